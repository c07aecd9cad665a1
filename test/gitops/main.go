// bloom-gitops: what GitOps tools make of a live object, computed by their own libraries.
//
//	bloom-gitops [--lua FILE] < object.json
//
// reads one Kubernetes object as JSON on stdin and prints one JSON line:
//
//	{"kstatus": {"status": "InProgress", "message": "..."}, "argo": {"status": "Progressing", "message": "..."}}
//
// kstatus is sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, what Flux's health checks (and kpt,
// cli-utils' apply --wait) run. argo (only with --lua) is an Argo CD custom health check
// (resource.customizations.health.<group>_<kind>) evaluated the way Argo CD does it: the object,
// decoded as the Kubernetes client decodes it (integers are int64), becomes the global table `obj`
// of a fresh gopher-lua state that has only the base, package and table libraries (no string or io
// library: Argo CD gives a custom script no more unless useOpenLibs is set), the script runs under
// a one-second deadline, and the table it returns must carry a valid status (Healthy, Progressing,
// Degraded, Suspended, Missing, Unknown); an invalid one reads as Unknown, as in Argo CD.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type result struct {
	Kstatus health  `json:"kstatus"`
	Argo    *health `json:"argo,omitempty"`
}

func main() {
	luaFile := flag.String("lua", "", "an Argo CD health script to evaluate on the object")
	flag.Parse()
	if err := run(*luaFile, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bloom-gitops:", err)
		os.Exit(1)
	}
}

func run(luaFile string, in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("decoding the object: %w", err)
	}
	ks, err := status.Compute(obj)
	if err != nil {
		return fmt.Errorf("kstatus: %w", err)
	}
	res := result{Kstatus: health{Status: ks.Status.String(), Message: ks.Message}}
	if luaFile != "" {
		script, err := os.ReadFile(luaFile)
		if err != nil {
			return err
		}
		h, err := argoHealth(obj, string(script))
		if err != nil {
			return fmt.Errorf("lua: %w", err)
		}
		res.Argo = h
	}
	return json.NewEncoder(out).Encode(res)
}

var validHealth = map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true}

func argoHealth(obj *unstructured.Unstructured, script string) (*health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{lua.LoadLibName: lua.OpenPackage, lua.BaseLibName: lua.OpenBase, lua.TabLibName: lua.OpenTable} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	table, ok := ret.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type().String())
	}
	field := func(name string) (string, error) {
		switch v := table.RawGetString(name).(type) {
		case *lua.LNilType:
			return "", nil
		case lua.LString:
			return string(v), nil
		default:
			return "", fmt.Errorf("%s is a %s, not a string", name, v.Type().String())
		}
	}
	statusValue, err := field("status")
	if err != nil {
		return nil, err
	}
	message, err := field("message")
	if err != nil {
		return nil, err
	}
	h := &health{Status: statusValue, Message: message}
	if !validHealth[h.Status] {
		return &health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return h, nil
}

// toLua converts a decoded JSON value the way Argo CD's health evaluation does: maps become
// tables keyed by string, arrays 1-based tables, numbers (float64 or int64) Lua numbers.
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}
