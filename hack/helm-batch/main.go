// helm-batch renders one chart for many releases in one process, each exactly as
// `helm template NAME CHART --namespace NS --skip-tests --values F...` does (the same
// helm.sh/helm/v3 library calls as its cmd/helm/template.go and install.go, client only:
// no cluster, no repositories, no plugins, no post-renderer, values files read from disk
// only). The reconciler runs it to render many cells of a service per process
// (reconciler/adapters/render/batch.py); a single render still runs `helm template`.
//
// Usage: helm-batch version          # the Helm version it is built from
//
//	helm-batch render JOBS.json  # JOBS: {"maxOutput": N, "jobs": [{"release": ...,
//	                             #   "namespace": ..., "chart": DIR, "values": [FILE...]}]}
//
// Output, per job in order: a header line "<index> <ok|error|over> <length>\n" and then
// exactly <length> bytes: the rendered YAML (ok), the error as `helm template` prints it
// without "Error: " (error), or nothing (over: the output was over maxOutput bytes).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pkg/errors"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/release"
)

// helmVersion is set with -ldflags -X main.helmVersion=... (hack/helm.sh).
var helmVersion = "unknown"

type job struct {
	Release   string   `json:"release"`
	Namespace string   `json:"namespace"`
	Chart     string   `json:"chart"`
	Values    []string `json:"values"`
}

type jobs struct {
	MaxOutput int   `json:"maxOutput"`
	Jobs      []job `json:"jobs"`
}

func checkIfInstallable(ch *chart.Chart) error {
	switch ch.Metadata.Type {
	case "", "application":
		return nil
	}
	return errors.Errorf("%s charts are not installable", ch.Metadata.Type)
}

func isTestHook(h *release.Hook) bool {
	for _, e := range h.Events {
		if e == release.HookTest {
			return true
		}
	}
	return false
}

// render is `helm template j.Release j.Chart --namespace j.Namespace --skip-tests
// --values j.Values...`'s runInstall and RunE.
func render(j job) (string, error) {
	cfg := &action.Configuration{Log: func(string, ...interface{}) {}}
	client := action.NewInstall(cfg)
	client.DryRunOption = "true"
	client.DryRun = true
	client.ReleaseName = j.Release
	client.Replace = true
	client.ClientOnly = true
	client.APIVersions = chartutil.VersionSet([]string{})
	client.IncludeCRDs = false
	client.Namespace = j.Namespace
	client.Timeout = 300 * time.Second

	vals, err := (&values.Options{ValueFiles: j.Values}).MergeValues(getter.Providers{})
	if err != nil {
		return "", err
	}
	chartRequested, err := loader.Load(j.Chart)
	if err != nil {
		return "", err
	}
	if err := checkIfInstallable(chartRequested); err != nil {
		return "", err
	}
	if req := chartRequested.Metadata.Dependencies; req != nil {
		if err := action.CheckDependencies(chartRequested, req); err != nil {
			return "", errors.Wrap(err, "An error occurred while checking for chart dependencies. You may need to run `helm dependency build` to fetch missing dependencies")
		}
	}
	rel, err := client.RunWithContext(context.Background(), chartRequested, vals)
	if err != nil {
		if rel != nil {
			return "", fmt.Errorf("%w\n\nUse --debug flag to render out invalid YAML", err)
		}
		return "", err
	}
	var manifests bytes.Buffer
	fmt.Fprintln(&manifests, strings.TrimSpace(rel.Manifest))
	for _, m := range rel.Hooks {
		if isTestHook(m) {
			continue
		}
		fmt.Fprintf(&manifests, "---\n# Source: %s\n%s\n", m.Path, m.Manifest)
	}
	return manifests.String(), nil
}

func emit(out io.Writer, i int, status, text string) error {
	if _, err := fmt.Fprintf(out, "%d %s %d\n", i, status, len(text)); err != nil {
		return err
	}
	_, err := io.WriteString(out, text)
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
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	for i, j := range todo.Jobs {
		text, err := render(j)
		switch {
		case err != nil:
			err = emit(out, i, "error", err.Error())
		case todo.MaxOutput > 0 && len(text) > todo.MaxOutput:
			err = emit(out, i, "over", "")
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
		fmt.Println(helmVersion)
	case len(os.Args) == 3 && os.Args[1] == "render":
		if err := run(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "Error: %s\n", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: helm-batch version | helm-batch render JOBS.json")
		os.Exit(2)
	}
}
