package rules

import (
	"errors"
	"math"
	"strings"

	"gopkg.in/yaml.v3"

	"pgveil/transform"
)

const ruleForms = "a rule is a transformer name or a one-key map such as {fake: email}"

// rule decodes the rule raw of the column or JSON path whose key is key:
// a transformer name (hash), or a one-key map from the name to nothing
// ({hash: }), to one value ({truncate: 3}) or to a map of parameters
// ({partial: {keep_last: 2}}). It reports every problem it finds and
// returns false when there was any.
func (p *parser) rule(raw, key *yaml.Node, at loc) (transform.Rule, bool) {
	n := p.deref(raw, at)
	if isNull(n) && (n == nil || n.Value == "" || n.Value == "~") {
		p.addf(key, at, "missing rule: write a transformer name (%s); %s", strings.Join(p.reg.Names(), ", "), ruleForms)
		return transform.Rule{}, false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		// `null` is the null transformer, though YAML reads it as null.
		s, ok := p.scalar(n, at)
		if !ok {
			return transform.Rule{}, false
		}
		if s.value == "" {
			p.addf(key, at, "missing rule: write a transformer name (%s); %s", strings.Join(p.reg.Names(), ", "), ruleForms)
			return transform.Rule{}, false
		}
		spec := p.spec(s, at)
		if spec == nil {
			return transform.Rule{}, false
		}
		r := transform.Rule{Name: spec.Name, Line: n.Line, Col: n.Column}
		return r, p.checkArgs(spec, r, at)
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			p.addf(n, at, "%s; this map has %d keys", ruleForms, len(n.Content)/2)
			return transform.Rule{}, false
		}
		es := p.entries(n, at)
		if len(es) != 1 {
			return transform.Rule{}, false
		}
		e := es[0]
		spec := p.spec(scalar{n: e.key, value: e.name}, at)
		if spec == nil {
			return transform.Rule{}, false
		}
		args, ok := p.args(spec, e, at)
		if !ok {
			return transform.Rule{}, false
		}
		r := transform.Rule{Name: spec.Name, Args: args, Line: n.Line, Col: n.Column}
		return r, p.checkArgs(spec, r, at)
	}
	p.addf(n, at, "%s, not %s", ruleForms, kindName(n))
	return transform.Rule{}, false
}

// spec returns the transformer named by s, or reports it unknown.
func (p *parser) spec(s scalar, at loc) *transform.Spec {
	if spec := p.reg.Spec(s.value); spec != nil {
		return spec
	}
	names := p.reg.Names()
	var b strings.Builder
	b.WriteString("unknown transformer " + show(s))
	if !s.fromEnv {
		if near := closest(s.value, names); near != "" {
			b.WriteString("; did you mean " + near + "?")
		}
	}
	b.WriteString(" (known: " + strings.Join(names, ", ") + ")")
	p.addf(s.n, at, "%s", b.String())
	return nil
}

// checkArgs runs the registry's checks on the rule's arguments, with the
// defaults filled in as Build will. A transform.PosError places the
// problem.
func (p *parser) checkArgs(spec *transform.Spec, r transform.Rule, at loc) bool {
	err := p.reg.CheckArgs(spec.Name, r.Args)
	if err == nil {
		return true
	}
	line, col := r.Line, r.Col
	if pe := (*transform.PosError)(nil); errors.As(err, &pe) && pe.Line > 0 {
		line, col = pe.Line, pe.Col
	}
	p.addAt(line, col, at, err.Error())
	return false
}

// args decodes the value of a one-key rule map: nothing, one value (the
// spec's shorthand), an inline map (the spec's ParamRules parameter) or a
// map of parameters.
func (p *parser) args(spec *transform.Spec, e entry, at loc) (transform.Args, bool) {
	n := p.deref(e.value, at)
	if isNull(n) {
		return nil, true
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return p.shorthand(spec, n, at)
	case yaml.MappingNode:
		if spec.Inline {
			prm := rulesParam(spec)
			if prm == nil {
				p.addf(n, at, "%s: the transformer declares an inline map but no %s parameter", spec.Name, transform.ParamRules)
				return nil, false
			}
			v, ok := p.pathRules(spec, prm, n, e.key, at)
			return transform.Args{prm.Name: v}, ok
		}
		args := transform.Args{}
		ok := true
		for _, pe := range p.entries(n, at) {
			prm := spec.Param(pe.name)
			if prm == nil {
				p.addf(pe.key, at, "%s has no parameter %q (%s)", spec.Name, pe.name, paramList(spec))
				ok = false
				continue
			}
			v, vok := p.param(spec, prm, pe, at)
			ok = ok && vok && !pe.dup
			args[pe.name] = v
		}
		return args, ok
	}
	p.addf(n, at, "%s takes one value or a map of parameters, not %s", spec.Name, kindName(n))
	return nil, false
}

// withArticle puts "a" or "an" before a noun.
func withArticle(s string) string {
	if s != "" && strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

func paramList(spec *transform.Spec) string {
	if len(spec.Params) == 0 {
		return "it takes none"
	}
	names := make([]string, len(spec.Params))
	for i, prm := range spec.Params {
		names[i] = prm.Name
	}
	return "parameters: " + strings.Join(names, ", ")
}

func rulesParam(spec *transform.Spec) *transform.Param {
	for i := range spec.Params {
		if spec.Params[i].Kind == transform.ParamRules {
			return &spec.Params[i]
		}
	}
	return nil
}

// shorthand decodes {name: value}: the spec's Shorthand names the
// parameter the value sets, given the value's YAML type.
func (p *parser) shorthand(spec *transform.Spec, n *yaml.Node, at loc) (transform.Args, bool) {
	s, ok := p.scalar(n, at)
	if !ok {
		return nil, false
	}
	v, kind := goValue(s)
	pname := ""
	if spec.Shorthand != nil {
		pname = spec.Shorthand(v)
	}
	if pname == "" {
		switch {
		case spec.Inline:
			p.addf(n, at, "%s takes a map of JSON paths to rules, such as {%s: {\"$.email\": {fake: email}}}", spec.Name, spec.Name)
		case len(spec.Params) == 0:
			p.addf(n, at, "%s takes no %s argument: it has no parameters; write %s", spec.Name, kind, spec.Name)
		default:
			p.addf(n, at, "%s takes no %s argument; write {%s: {param: value}} (%s)", spec.Name, kind, spec.Name, paramList(spec))
		}
		return nil, false
	}
	prm := spec.Param(pname)
	if prm == nil {
		p.addf(n, at, "%s: the shorthand names an unknown parameter %q", spec.Name, pname)
		return nil, false
	}
	val, ok := p.paramScalar(spec, prm, s, at)
	if !ok {
		return nil, false
	}
	return transform.Args{pname: val}, true
}

// goValue decodes a scalar by its YAML tag: int64, float64, bool or
// string, and names its kind for messages.
func goValue(s scalar) (any, string) {
	switch s.tag {
	case "!!int":
		if i, ok := decodeInt(s); ok {
			return i, "integer"
		}
		if f, ok := decodeFloat(s); ok {
			return f, "number"
		}
	case "!!float":
		if f, ok := decodeFloat(s); ok {
			return f, "number"
		}
	case "!!bool":
		if b, ok := decodeBool(s); ok {
			return b, "boolean"
		}
	}
	return s.value, "string"
}

func decodeAs(s scalar, tag string, v any) bool {
	n := yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s.value}
	return n.Decode(v) == nil
}

func decodeInt(s scalar) (int64, bool) {
	var i int64
	return i, s.tag == "!!int" && decodeAs(s, "!!int", &i)
}

func decodeFloat(s scalar) (float64, bool) {
	var f float64
	switch s.tag {
	case "!!int", "!!float":
		return f, decodeAs(s, s.tag, &f)
	}
	return 0, false
}

func decodeBool(s scalar) (bool, bool) {
	var b bool
	return b, s.tag == "!!bool" && decodeAs(s, "!!bool", &b)
}

// param decodes the value of parameter prm, given as pe in a map of
// parameters.
func (p *parser) param(spec *transform.Spec, prm *transform.Param, pe entry, at loc) (any, bool) {
	n := p.deref(pe.value, at)
	if prm.Kind == transform.ParamRules {
		return p.pathRules(spec, prm, n, pe.key, at)
	}
	if isNull(n) {
		p.addf(pe.key, at, "%s: %s needs a value", spec.Name, prm.Name)
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		p.addf(n, at, "%s: %s must be %s, not %s", spec.Name, prm.Name, withArticle(prm.Kind.String()), kindName(n))
		return nil, false
	}
	s, ok := p.scalar(n, at)
	if !ok {
		return nil, false
	}
	return p.paramScalar(spec, prm, s, at)
}

// paramScalar decodes one value to the Go type of prm's kind and checks
// it (enum, range), so that a problem points at the value itself.
func (p *parser) paramScalar(spec *transform.Spec, prm *transform.Param, s scalar, at loc) (any, bool) {
	v, ok := p.decodeScalar(spec, prm, s, at)
	if !ok {
		return nil, false
	}
	if err := prm.Validate(v); err != nil {
		p.addf(s.n, at, "%s: %s: %s", spec.Name, prm.Name, err)
		return nil, false
	}
	return v, true
}

// decodeScalar decodes one value to the Go type of prm's kind.
func (p *parser) decodeScalar(spec *transform.Spec, prm *transform.Param, s scalar, at loc) (any, bool) {
	bad := func(msg string) (any, bool) {
		p.addf(s.n, at, "%s: %s: %s", spec.Name, prm.Name, msg)
		return nil, false
	}
	switch prm.Kind {
	case transform.ParamInt:
		if i, ok := decodeInt(s); ok {
			return i, true
		}
		if f, ok := decodeFloat(s); ok && f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
			return int64(f), true
		}
		return bad("must be an integer")
	case transform.ParamNumber:
		if i, ok := decodeInt(s); ok {
			return float64(i), true
		}
		if f, ok := decodeFloat(s); ok {
			if math.IsInf(f, 0) || math.IsNaN(f) {
				return bad("must be a finite number")
			}
			return f, true
		}
		return bad("must be a number")
	case transform.ParamString, transform.ParamChar:
		return s.value, true
	case transform.ParamBool:
		if b, ok := decodeBool(s); ok {
			return b, true
		}
		return bad("must be true or false")
	case transform.ParamDuration:
		d, err := transform.ParseDuration(s.value)
		if err != nil {
			return bad(err.Error())
		}
		return d, true
	case transform.ParamRules:
		return bad("must be a map of JSON paths to rules")
	}
	return bad("has a kind pgveil cannot read")
}

// pathRules decodes a map of JSON paths to rules, each rule decoded by
// rule. Path syntax is the transformer's to check.
func (p *parser) pathRules(spec *transform.Spec, prm *transform.Param, n, key *yaml.Node, at loc) (any, bool) {
	if isNull(n) || n.Kind != yaml.MappingNode {
		what, kind := spec.Name+": "+prm.Name, kindName(n)
		if spec.Inline {
			what = spec.Name
		}
		if n == nil {
			n = key
		}
		p.addf(n, at, "%s must be a map of JSON paths to rules, such as {\"$.email\": {fake: email}}, not %s", what, kind)
		return nil, false
	}
	es := p.entries(n, at)
	out := make([]transform.PathRule, 0, len(es))
	ok := true
	for _, e := range es {
		if !strings.HasPrefix(e.name, "$") {
			p.addf(e.key, at, "JSON path %q must start with $", e.name)
			ok = false
		}
		r, rok := p.rule(e.value, e.key, at)
		ok = ok && rok && !e.dup
		out = append(out, transform.PathRule{Path: e.name, Rule: r, Line: e.key.Line, Col: e.key.Column})
	}
	return out, ok
}
