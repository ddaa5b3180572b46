// Helper module: builds the etcd server binary (go.etcd.io/etcd/server/v3 is a
// main package inside a library module, so it needs a module of its own).
module reconciler.dev/hack/k8s-testenv/etcd

go 1.26.0

tool go.etcd.io/etcd/server/v3

require go.etcd.io/etcd/server/v3 v3.7.3
