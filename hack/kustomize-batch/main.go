// kustomize-batch builds many kustomizations in one process, each exactly as
// `kubectl kustomize DIR --load-restrictor LoadRestrictionsRootOnly` does (the same
// sigs.k8s.io/kustomize/api krusty calls as kustomize/v5's commands/build, which kubectl
// runs: default options, root-only load restrictor, no plugins, no Helm inflation, no
// exec or container functions, no reordering flag). The reconciler runs it to render many
// cells of a Kustomize service per process (reconciler/adapters/render/batch.py); without
// it, `kubectl kustomize` renders a generated kustomization over many cells at once.
//
// Usage: kustomize-batch version          # the Kustomize version it is built from
//
//	kustomize-batch render JOBS.json  # JOBS: {"maxOutput": N, "jobs": [{"dir": DIR}]}
//
// Output, per job in order: a header line "<index> <ok|error|over> <length>\n" and then
// exactly <length> bytes: the built YAML (ok), the error as `kubectl kustomize` prints
// it without "error: " (error), or nothing (over: the output was over maxOutput bytes).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizeVersion is set with -ldflags -X main.kustomizeVersion=... (hack/helm.sh).
var kustomizeVersion = "unknown"

type job struct {
	Dir string `json:"dir"`
}

type jobs struct {
	MaxOutput int   `json:"maxOutput"`
	Jobs      []job `json:"jobs"`
}

// options are kustomize/v5 commands/build's HonorKustomizeFlags(MakeDefaultOptions())
// with only --load-restrictor LoadRestrictionsRootOnly given.
func options() *krusty.Options {
	o := krusty.MakeDefaultOptions()
	o.Reorder = krusty.ReorderOptionUnspecified
	o.LoadRestrictions = types.LoadRestrictionsRootOnly
	o.PluginConfig.HelmConfig.Enabled = false
	o.PluginConfig.HelmConfig.Command = "helm"
	o.AddManagedbyLabel = false
	return o
}

func build(fs filesys.FileSystem, dir string) ([]byte, error) {
	m, err := krusty.MakeKustomizer(options()).Run(fs, dir)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}

func emit(out io.Writer, i int, status string, text []byte) error {
	if _, err := fmt.Fprintf(out, "%d %s %d\n", i, status, len(text)); err != nil {
		return err
	}
	_, err := out.Write(text)
	return err
}

func run(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var todo jobs
	if err := json.Unmarshal(raw, &todo); err != nil {
		return err
	}
	fs := filesys.MakeFsOnDisk()
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	for i, j := range todo.Jobs {
		text, err := build(fs, j.Dir)
		switch {
		case err != nil:
			err = emit(out, i, "error", []byte(err.Error()))
		case todo.MaxOutput > 0 && len(text) > todo.MaxOutput:
			err = emit(out, i, "over", nil)
		default:
			err = emit(out, i, "ok", text)
		}
		if err == nil {
			err = out.Flush() // one cell at a time: the caller's deadline is per cell
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func main() {
	switch {
	case len(os.Args) == 2 && os.Args[1] == "version":
		fmt.Println(kustomizeVersion)
	case len(os.Args) == 3 && os.Args[1] == "render":
		if err := run(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "error: %s\n", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: kustomize-batch version | kustomize-batch render JOBS.json")
		os.Exit(2)
	}
}
