package fhirserver

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// practitioners is the number of synthetic practitioners pr1…pr10; pr1…pr6
// are physicians, the rest nurses.
const (
	practitioners = 10
	physicians    = 6
)

// rng is splitmix64. It is tiny and fixed forever, so a seed names the same
// data set in every Go release.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int          { return int(r.next() % uint64(n)) }
func (r *rng) chance(percent int) bool { return r.intn(100) < percent }
func (r *rng) pick(list []string) string {
	return list[r.intn(len(list))]
}

// float returns a value in [lo, hi] rounded to decimals places.
func (r *rng) float(lo, hi float64, decimals int) float64 {
	x := lo + (hi-lo)*float64(r.next()>>11)/float64(1<<53)
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}

type (
	obj = map[string]any
	arr = []any
)

// record is what every resource of one patient's chart shares.
type record struct {
	ref   string // "Patient/pN"
	conf  string // record confidentiality: "", "R" or "V"
	tags  []string
	team  []int    // practitioner numbers, GP first
	name  string   // display name
	encs  []string // encounter references
	times []time.Time
}

// generator builds the data set. It is used once, inside New.
type generator struct {
	s      *Server
	r      rng
	anchor time.Time // UTC midnight of the day clinical dates are relative to
}

func (s *Server) seed(seed int64, patients int, anchor time.Time) {
	g := &generator{s: s, r: rng{state: uint64(seed)}, anchor: anchor}
	for i := 1; i <= practitioners; i++ {
		g.practitioner(i)
	}
	for i := 1; i <= patients; i++ {
		g.chart(i)
	}
}

// add stores res as version 1. Seed resources cannot fail to marshal (they
// hold only strings, numbers, maps and slices built here).
func (g *generator) add(typ, id string, res obj) {
	spec := g.s.specs[typ]
	res["resourceType"] = typ
	v, err := newVersion(spec, id, 1, http.MethodPost, res, g.anchor)
	if err == nil {
		g.s.commit(g.s.types[typ], v)
	}
}

func coding(system, code, display string) obj {
	return obj{"system": system, "code": code, "display": display}
}

func concept(system, code, display string) obj {
	return obj{"coding": arr{coding(system, code, display)}, "text": display}
}

func ref(r string) obj { return obj{"reference": r} }

func dateTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// meta returns the meta element: the stronger of the record's and the
// resource's confidentiality, the ActCode labels and the record's tags.
func (rec *record) meta(conf string, act ...string) obj {
	if rec.conf == "V" || conf == "" {
		conf = rec.conf
	}
	var sec arr
	if conf != "" {
		display := map[string]string{"R": "restricted", "V": "very restricted"}[conf]
		sec = append(sec, coding(sysConfidential, conf, display))
	}
	for _, a := range act {
		display := map[string]string{"PSY": "psychiatry information sensitivity",
			"HIV": "HIV/AIDS information sensitivity"}[a]
		sec = append(sec, coding(sysActCode, a, display))
	}
	m := obj{}
	if len(sec) > 0 {
		m["security"] = sec
	}
	var tags arr
	for _, t := range rec.tags {
		tags = append(tags, coding(SysTags, t, map[string]string{"vip": "VIP patient",
			"employee": "employee-patient"}[t]))
	}
	if len(tags) > 0 {
		m["tag"] = tags
	}
	return m
}

func (g *generator) practitioner(i int) {
	female := g.r.chance(50)
	given := g.r.pick(givenMale)
	if female {
		given = g.r.pick(givenFemale)
	}
	family := g.r.pick(families)
	name := obj{"use": "official", "family": family, "given": arr{given}}
	degree := coding(sysDegreeV2, "RN", "Registered Nurse")
	if i <= physicians {
		name["prefix"] = arr{"Dr."}
		degree = coding(sysDegreeV2, "MD", "Doctor of Medicine")
	}
	g.add("Practitioner", fmt.Sprintf("pr%d", i), obj{
		"active":     true,
		"identifier": arr{obj{"system": sysNPI, "value": fmt.Sprintf("%d", 1000000000+i*104729+g.r.intn(1000))}},
		"name":       arr{name},
		"telecom": arr{obj{"system": "email", "use": "work",
			"value": emailLocal(given) + "." + emailLocal(family) + "@hospital.example"}},
		"qualification": arr{obj{"code": obj{"coding": arr{degree}}}},
	})
}

func emailLocal(s string) string {
	return strings.ToLower(strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' {
			return r
		}
		return -1
	}, s))
}

// chart creates patient pN and everything in its record.
func (g *generator) chart(i int) {
	rec := &record{ref: fmt.Sprintf("Patient/p%d", i)}
	switch i {
	case 3:
		rec.conf = "R"
	case 7:
		rec.conf, rec.tags = "V", []string{"vip"}
	case 8:
		rec.tags = []string{"employee"}
	}
	g.careTeam(i, rec)
	g.patient(i, rec)
	g.add("CareTeam", fmt.Sprintf("ct-p%d-1", i), obj{
		"meta": rec.meta(""), "status": "active", "name": "Primary care team",
		"subject": ref(rec.ref), "participant": g.teamParticipants(rec),
	})
	g.encounters(i, rec)
	g.observations(i, rec)
	psy := g.conditions(i, rec)
	g.medications(i, rec, psy)
	g.documents(i, rec, psy)
}

// careTeam picks the GP (a physician) and one or two more members. p1's
// GP is pr1; pr1 is never on p2's team (fixed points for demos).
func (g *generator) careTeam(i int, rec *record) {
	gp := 1 + g.r.intn(physicians)
	switch i {
	case 1:
		gp = 1
	case 2:
		gp = 2 + g.r.intn(physicians-1)
	}
	rec.team = []int{gp, physicians + 1 + g.r.intn(practitioners-physicians)}
	if other := 1 + g.r.intn(physicians); g.r.chance(40) && other != gp && !(i == 2 && other == 1) {
		rec.team = append(rec.team, other)
	}
}

func practitionerRef(n int) string { return fmt.Sprintf("Practitioner/pr%d", n) }

func (g *generator) teamParticipants(rec *record) arr {
	var out arr
	for k, n := range rec.team {
		role := concept(sysSNOMED, "309343006", "Physician")
		switch {
		case k == 0:
			role = concept(sysSNOMED, "446050000", "Primary care physician")
		case n > physicians:
			role = concept(sysSNOMED, "224535009", "Registered nurse")
		}
		out = append(out, obj{"role": arr{role}, "member": ref(practitionerRef(n))})
	}
	return out
}

func (g *generator) patient(i int, rec *record) {
	gender := []string{"female", "male", "female", "male", "other", "unknown"}[g.genderIndex()]
	given := g.r.pick(givenFemale)
	if gender == "male" || (gender != "female" && g.r.chance(50)) {
		given = g.r.pick(givenMale)
	}
	family := g.r.pick(families)
	rec.name = given + " " + family
	birth := time.Date(1935+g.r.intn(80), time.Month(1+g.r.intn(12)), 1+g.r.intn(28), 0, 0, 0, 0, time.UTC)
	p := places[g.r.intn(len(places))]
	g.add("Patient", fmt.Sprintf("p%d", i), obj{
		"meta":   rec.meta(""),
		"active": true,
		"identifier": arr{
			obj{"use": "usual", "type": concept(sysIdentifierV2, "MR", "Medical record number"),
				"system": sysMRN, "value": fmt.Sprintf("MRN%08d", 10000000+i*1009+g.r.intn(1000))},
			obj{"type": concept(sysIdentifierV2, "SS", "Social Security number"), "system": sysSSN,
				"value": fmt.Sprintf("9%02d-%02d-%04d", g.r.intn(100), 1+g.r.intn(99), 1+g.r.intn(9999))},
		},
		"name": arr{obj{"use": "official", "family": family, "given": arr{given}}},
		"telecom": arr{
			obj{"system": "phone", "use": "home", "value": fmt.Sprintf("+1-555-555-01%02d", g.r.intn(100))},
			obj{"system": "email", "use": "home",
				"value": emailLocal(given) + "." + emailLocal(family) + fmt.Sprintf("%d@example.com", i)},
		},
		"gender":    gender,
		"birthDate": birth.Format(time.DateOnly),
		"address": arr{obj{"use": "home", "line": arr{fmt.Sprintf("%d %s", 1+g.r.intn(9999), g.r.pick(streets))},
			"city": p.city, "state": p.state, "postalCode": p.postal, "country": "US"}},
		"generalPractitioner": arr{ref(practitionerRef(rec.team[0]))},
	})
}

// genderIndex returns 0–3 (female/male) 96% of the time, else 4 or 5.
func (g *generator) genderIndex() int {
	if g.r.chance(96) {
		return g.r.intn(4)
	}
	return 4 + g.r.intn(2)
}
