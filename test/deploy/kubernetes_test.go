package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"gatehouse/internal/testutil"
)

// The parts of the Kubernetes objects the checks read.
type (
	k8sObject struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec       yaml.Node         `yaml:"spec"`
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
		Resources  []string          `yaml:"resources"` // kustomization
		file       string
	}
	deploymentSpec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
					RunAsUser    int   `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
				Volumes                       []k8sVolume `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		EnvFrom []struct {
			SecretRef *struct {
				Name string `yaml:"name"`
			} `yaml:"secretRef"`
		} `yaml:"envFrom"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		StartupProbe   *probe `yaml:"startupProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"` // a number or a port name
		} `yaml:"httpGet"`
	}
	k8sVolume struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		EmptyDir              any `yaml:"emptyDir"`
		PersistentVolumeClaim any `yaml:"persistentVolumeClaim"`
	}
)

// loadManifests reads every YAML document of deploy/kubernetes/*.yaml.
func loadManifests(t *testing.T, dir string) []*k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	var objs []*k8sObject
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			o := &k8sObject{file: filepath.Base(f)}
			if err := dec.Decode(o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" || o.APIVersion == "" {
				t.Errorf("%s: a document without kind or apiVersion", f)
				continue
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	objs := loadManifests(t, filepath.Join(testutil.RepoRoot(t), "deploy", "kubernetes"))
	for _, e := range checkManifests(t, objs) {
		t.Error(e)
	}
}

func checkManifests(t *testing.T, objs []*k8sObject) []string {
	t.Helper()
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	byKind := map[string]*k8sObject{}
	var files []string
	for _, o := range objs {
		if o.Kind != "Kustomization" {
			if prev := byKind[o.Kind]; prev != nil {
				bad("two %s objects (%s, %s)", o.Kind, prev.file, o.file)
			}
			byKind[o.Kind] = o
			if !slices.Contains(files, o.file) {
				files = append(files, o.file)
			}
		}
	}
	for _, k := range []string{"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"} {
		if byKind[k] == nil {
			bad("no %s", k)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	for _, o := range objs {
		if o.Kind == "Kustomization" {
			slices.Sort(files)
			got := slices.Sorted(slices.Values(o.Resources))
			if !slices.Equal(got, files) {
				bad("kustomization.yaml lists %q, the manifests are %q", got, files)
			}
		}
	}

	var dep deploymentSpec
	if err := byKind["Deployment"].Spec.Decode(&dep); err != nil {
		return append(errs, "Deployment: "+err.Error())
	}
	pod := dep.Template.Spec
	if dep.Replicas < 2 {
		bad("Deployment: %d replicas, want at least 2", dep.Replicas)
	}
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser != imageUID {
		bad("Deployment: pod securityContext must be runAsNonRoot with runAsUser %d (the image's USER)", imageUID)
	}
	if len(pod.Containers) != 1 {
		return append(errs, "Deployment: want one container")
	}
	c := pod.Containers[0]
	if _, tag := splitImage(c.Image); tag == "" || tag == "latest" {
		bad("Deployment: image %q: pin a version", c.Image)
	}
	if len(c.Args) > 0 && !slices.Equal(c.Args, []string{"run", "-c", imageConfig}) {
		bad("Deployment: args %q: the config is at %s", c.Args, imageConfig)
	}
	sc := c.SecurityContext
	if !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		bad("Deployment: container securityContext must have readOnlyRootFilesystem, allowPrivilegeEscalation false, capabilities.drop [ALL]")
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		bad("Deployment: want cpu and memory requests and a memory limit")
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}

	// The config, as the pod sees it: validated as in the image.
	cm := byKind["ConfigMap"]
	data, ok := cm.Data[filepath.Base(imageConfig)]
	if !ok {
		return append(errs, "ConfigMap: no "+filepath.Base(imageConfig))
	}
	doc := validateInImage(t, "configmap.yaml:"+filepath.Base(imageConfig), []byte(data))
	checkTargets(t, "ConfigMap", doc)
	admin, http := portOf(t, doc.Config.Admin.Listen), portOf(t, doc.Config.Server.Listen[0])
	if h := doc.Config.Admin.Listen; strings.HasPrefix(h, "127.") || strings.HasPrefix(h, "localhost") {
		bad("ConfigMap: admin.listen %q is loopback: the kubelet's probes cannot reach it", h)
	}
	if ports["admin"] != admin || ports["http"] != http {
		bad("Deployment: container ports %v, the config listens on http %d and admin %d", ports, http, admin)
	}

	// Probes: liveness on /healthz, readiness on /readyz, both on the
	// admin listener.
	resolve := func(p any) int {
		switch v := p.(type) {
		case int:
			return v
		case string:
			return ports[v]
		}
		return 0
	}
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}, {"startupProbe", c.StartupProbe, "/healthz"}} {
		switch {
		case pr.p == nil || pr.p.HTTPGet == nil:
			bad("Deployment: no %s httpGet", pr.name)
		case pr.p.HTTPGet.Path != pr.path || resolve(pr.p.HTTPGet.Port) != admin:
			bad("Deployment: %s GET %s on port %v, want %s on the admin port %d", pr.name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path, admin)
		}
	}

	// Mounts: the ConfigMap as the whole config directory (a subPath mount
	// never sees an update, so reloads would not happen), read-only; the
	// state directory writable.
	vols := map[string]k8sVolume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	var cfgMounted, stateMounted bool
	for _, m := range c.VolumeMounts {
		v := vols[m.Name]
		switch m.MountPath {
		case filepath.Dir(imageConfig):
			cfgMounted = v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name && m.ReadOnly && m.SubPath == ""
		case imageConfig:
			bad("Deployment: the config file is mounted on its own (subPath): ConfigMap updates would never reach it")
		case stateDir:
			stateMounted = !m.ReadOnly && (v.EmptyDir != nil || v.PersistentVolumeClaim != nil)
		}
	}
	if !cfgMounted {
		bad("Deployment: ConfigMap %s is not mounted read-only at %s", cm.Metadata.Name, filepath.Dir(imageConfig))
	}
	if !stateMounted {
		bad("Deployment: no writable volume at %s (the root file system is read-only)", stateDir)
	}

	// Secrets: from the Secret, as environment variables.
	sec := byKind["Secret"]
	fromSecret := false
	for _, e := range c.EnvFrom {
		fromSecret = fromSecret || (e.SecretRef != nil && e.SecretRef.Name == sec.Metadata.Name)
	}
	if !fromSecret {
		bad("Deployment: Secret %s is not passed as environment variables (envFrom)", sec.Metadata.Name)
	}
	if len(sec.StringData) == 0 {
		bad("Secret: no stringData")
	}
	for k, v := range sec.StringData {
		if !strings.HasPrefix(v, "change-me") {
			bad("Secret: %s is not a placeholder", k)
		}
	}

	// Service and PodDisruptionBudget select the pods; the Service sends to
	// the proxy port, never the admin one.
	labels := dep.Template.Metadata.Labels
	var svc struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			TargetPort any `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	if err := byKind["Service"].Spec.Decode(&svc); err != nil {
		return append(errs, "Service: "+err.Error())
	}
	for k, v := range svc.Selector {
		if labels[k] != v {
			bad("Service: selector %v does not select the pods %v", svc.Selector, labels)
		}
	}
	for _, p := range svc.Ports {
		if resolve(p.TargetPort) != http {
			bad("Service: targetPort %v is not the proxy port %d", p.TargetPort, http)
		}
	}
	var pdb struct {
		MinAvailable int `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	if err := byKind["PodDisruptionBudget"].Spec.Decode(&pdb); err != nil {
		return append(errs, "PodDisruptionBudget: "+err.Error())
	}
	if pdb.MinAvailable < 1 || pdb.MinAvailable >= dep.Replicas || len(pdb.Selector.MatchLabels) == 0 {
		bad("PodDisruptionBudget: minAvailable %d of %d replicas", pdb.MinAvailable, dep.Replicas)
	}
	for k, v := range pdb.Selector.MatchLabels {
		if labels[k] != v {
			bad("PodDisruptionBudget: selector does not select the pods")
		}
	}
	return errs
}

// The manifest checks refuse what they are for.
func TestKubernetesRefuses(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testutil.RepoRoot(t), "deploy", "kubernetes")
	tests := []struct{ name, file, old, new, want string }{
		{"liveness on readyz", "deployment.yaml", "path: /healthz\n              port: admin\n            periodSeconds: 10", "path: /readyz\n              port: admin\n            periodSeconds: 10", "livenessProbe"},
		{"probe on proxy port", "deployment.yaml", "path: /readyz\n              port: admin", "path: /readyz\n              port: http", "readinessProbe"},
		{"admin moved", "configmap.yaml", `listen: ":9901"`, `listen: ":9902"`, "container ports"},
		{"admin loopback", "configmap.yaml", `listen: ":9901"`, `listen: "127.0.0.1:9901"`, "loopback"},
		{"writable root", "deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"root user", "deployment.yaml", "runAsUser: 65532", "runAsUser: 0", "runAsUser"},
		{"subPath", "deployment.yaml", "mountPath: /etc/gatehouse\n", "mountPath: /etc/gatehouse/gatehouse.yaml\n              subPath: gatehouse.yaml\n", "subPath"},
		{"no secret env", "deployment.yaml", "name: gatehouse-secrets", "name: other", "envFrom"},
		{"service to admin", "service.yaml", "targetPort: http", "targetPort: admin", "targetPort"},
		{"one replica", "deployment.yaml", "replicas: 2", "replicas: 1", "replicas"},
		{"real secret", "secret.yaml", `GATEHOUSE_REDIS_PASSWORD: "change-me"`, `GATEHOUSE_REDIS_PASSWORD: "hunter2"`, "placeholder"},
		{"pdb too strict", "pdb.yaml", "minAvailable: 1", "minAvailable: 2", "minAvailable"},
		{"unlisted", "kustomization.yaml", "  - pdb.yaml\n", "", "kustomization.yaml lists"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
			found := false
			for _, f := range files {
				raw, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if filepath.Base(f) == tc.file {
					found = bytes.Contains(raw, []byte(tc.old))
					raw = bytes.Replace(raw, []byte(tc.old), []byte(tc.new), 1)
				}
				if err := os.WriteFile(filepath.Join(tmp, filepath.Base(f)), raw, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if !found {
				t.Fatalf("%s no longer contains %q: update this case", tc.file, tc.old)
			}
			errs := checkManifests(t, loadManifests(t, tmp))
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Errorf("not refused for %q: %q", tc.want, errs)
			}
		})
	}
}
