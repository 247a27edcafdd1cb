package fhirserver

import (
	"encoding/base64"
	"fmt"
	"time"
)

// encounters creates 1–3 encounters, the first within the last 30 days for
// most patients (so "recent encounter" rules have something to find).
func (g *generator) encounters(i int, rec *record) {
	n := 1 + g.r.intn(3)
	for k := 1; k <= n; k++ {
		days := 31 + g.r.intn(700)
		if k == 1 && (i <= 2 || g.r.chance(60)) {
			days = 1 + g.r.intn(30)
		}
		start := g.anchor.AddDate(0, 0, -days).Add(time.Duration(8+g.r.intn(9)) * time.Hour)
		class := encClasses[0]
		if x := g.r.intn(100); x >= 85 {
			class = encClasses[2]
		} else if x >= 70 {
			class = encClasses[1]
		}
		end := start.Add(time.Duration(20+g.r.intn(60)) * time.Minute)
		if class.code == "IMP" {
			end = start.Add(time.Duration(1+g.r.intn(6)) * 24 * time.Hour)
		}
		who := rec.team[g.r.intn(len(rec.team))]
		id := fmt.Sprintf("enc-p%d-%d", i, k)
		rec.encs = append(rec.encs, "Encounter/"+id)
		rec.times = append(rec.times, start)
		g.add("Encounter", id, obj{
			"meta": rec.meta(""), "status": "finished",
			"class":       coding(sysActCode, class.code, class.display),
			"type":        arr{concept(sysSNOMED, class.typeCode, class.typeDisplay)},
			"subject":     ref(rec.ref),
			"participant": arr{obj{"individual": ref(practitionerRef(who))}},
			"period":      obj{"start": dateTime(start), "end": dateTime(end)},
		})
	}
}

// encounter picks one of the patient's encounters: its reference and time.
func (g *generator) encounter(rec *record) (string, time.Time) {
	k := g.r.intn(len(rec.encs))
	return rec.encs[k], rec.times[k]
}

func (g *generator) observations(i int, rec *record) {
	n := 3 + g.r.intn(3)
	for k := 1; k <= n; k++ {
		c := obsCodes[g.r.intn(len(obsCodes))]
		enc, t := g.encounter(rec)
		g.add("Observation", fmt.Sprintf("obs-p%d-%d", i, k), obj{
			"meta": rec.meta(""), "status": "final",
			"category":          arr{concept(sysObsCategory, c.category, map[string]string{"vital-signs": "Vital Signs", "laboratory": "Laboratory"}[c.category])},
			"code":              concept(sysLOINC, c.code, c.display),
			"subject":           ref(rec.ref),
			"encounter":         ref(enc),
			"effectiveDateTime": dateTime(t.Add(time.Duration(5+g.r.intn(30)) * time.Minute)),
			"valueQuantity": obj{"value": g.r.float(c.lo, c.hi, c.decimals), "unit": c.unit,
				"system": sysUCUM, "code": c.ucum},
		})
	}
}

// conditions creates 1–3 ordinary conditions and, for some patients (always
// p4 and p5), a psychiatric or HIV diagnosis labelled PSY or HIV and R. It
// returns the psychiatric diagnosis, if any.
func (g *generator) conditions(i int, rec *record) *condCode {
	var psy *condCode
	k := 0
	add := func(c condCode, act ...string) {
		k++
		_, t := g.encounter(rec)
		conf := ""
		if len(act) > 0 {
			conf = "R"
		}
		g.add("Condition", fmt.Sprintf("cond-p%d-%d", i, k), obj{
			"meta":               rec.meta(conf, act...),
			"clinicalStatus":     concept(sysCondClinical, "active", "Active"),
			"verificationStatus": concept(sysCondVerify, "confirmed", "Confirmed"),
			"category":           arr{concept(sysCondCategory, "problem-list-item", "Problem List Item")},
			"code":               concept(sysSNOMED, c.code, c.display),
			"subject":            ref(rec.ref),
			"onsetDateTime":      dateTime(t.AddDate(0, -g.r.intn(36), 0)),
			"recordedDate":       dateTime(t),
		})
	}
	first := g.r.intn(len(conditions))
	n := 1 + g.r.intn(3)
	for j := range n {
		add(conditions[(first+j*3)%len(conditions)])
	}
	if i == 4 || (i != 5 && g.r.chance(10)) {
		c := psyConditions[g.r.intn(len(psyConditions))]
		psy = &c
		add(c, "PSY")
	}
	if i == 5 || g.r.chance(4) {
		add(hivCondition, "HIV")
	}
	return psy
}

func (g *generator) medications(i int, rec *record, psy *condCode) {
	k := 0
	add := func(m medCode, act ...string) {
		k++
		enc, t := g.encounter(rec)
		conf := ""
		if len(act) > 0 {
			conf = "R"
		}
		g.add("MedicationRequest", fmt.Sprintf("med-p%d-%d", i, k), obj{
			"meta": rec.meta(conf, act...), "status": "active", "intent": "order",
			"medicationCodeableConcept": concept(sysRxNorm, m.code, m.display),
			"subject":                   ref(rec.ref),
			"encounter":                 ref(enc),
			"authoredOn":                dateTime(t),
			"requester":                 ref(practitionerRef(rec.team[0])),
			"dosageInstruction":         arr{obj{"text": m.dosage}},
		})
	}
	first := g.r.intn(len(meds))
	for j := range 1 + g.r.intn(2) {
		add(meds[(first+j*2)%len(meds)])
	}
	if psy != nil {
		add(psyMed, "PSY")
	}
}

// documents creates 1–2 clinical notes and, with a psychiatric diagnosis,
// a psychiatry consult note labelled PSY and R.
func (g *generator) documents(i int, rec *record, psy *condCode) {
	k := 0
	add := func(dt docType, title, text string, act ...string) {
		k++
		enc, t := g.encounter(rec)
		conf := ""
		if len(act) > 0 {
			conf = "R"
		}
		g.add("DocumentReference", fmt.Sprintf("doc-p%d-%d", i, k), obj{
			"meta": rec.meta(conf, act...), "status": "current",
			"type":        concept(sysLOINC, dt.code, dt.display),
			"category":    arr{concept(sysDocCategory, "clinical-note", "Clinical Note")},
			"subject":     ref(rec.ref),
			"date":        dateTime(t.Add(time.Hour)),
			"author":      arr{ref(practitionerRef(rec.team[0]))},
			"description": title,
			"content": arr{obj{"attachment": obj{
				"contentType": "text/plain", "language": "en-US", "title": title,
				"data":     base64.StdEncoding.EncodeToString([]byte(text)),
				"creation": dateTime(t.Add(time.Hour)),
			}}},
			"context": obj{"encounter": arr{ref(enc)}},
		})
	}
	add(docProgress, "Progress note", fmt.Sprintf(
		"Progress note for %s.\nSeen for follow-up. Vital signs reviewed and stable.\n"+
			"Plan: continue current medications, return in %d weeks.\n", rec.name, 2+g.r.intn(10)))
	if g.r.chance(50) {
		add(docHistory, "History and physical", fmt.Sprintf(
			"History and physical for %s.\nNo known drug allergies. Non-smoker.\n"+
				"Examination unremarkable apart from the problems on the list.\n", rec.name))
	}
	if psy != nil {
		add(docConsult, "Psychiatry consult note", fmt.Sprintf(
			"Psychiatry consult for %s.\nAssessment: %s.\nPlan: start sertraline, "+
				"psychotherapy referral, review in 4 weeks.\n", rec.name, psy.display), "PSY")
	}
}
