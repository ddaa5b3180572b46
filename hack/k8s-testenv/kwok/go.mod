// Helper module: builds the KWOK controller (simulated nodes and pods).
module reconciler.dev/hack/k8s-testenv/kwok

go 1.26.0

tool sigs.k8s.io/kwok/cmd/kwok

require sigs.k8s.io/kwok v0.8.0
