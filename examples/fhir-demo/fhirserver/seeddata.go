package fhirserver

// Read-only tables for the synthetic data set. Codes are real LOINC,
// SNOMED CT and RxNorm codes; people, identifiers and notes are invented.

// Code systems and identifier systems.
const (
	sysMRN          = "urn:oid:2.16.840.1.113883.19.5"
	sysSSN          = "http://hl7.org/fhir/sid/us-ssn"
	sysNPI          = "http://hl7.org/fhir/sid/us-npi"
	sysLOINC        = "http://loinc.org"
	sysSNOMED       = "http://snomed.info/sct"
	sysRxNorm       = "http://www.nlm.nih.gov/research/umls/rxnorm"
	sysUCUM         = "http://unitsofmeasure.org"
	sysConfidential = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	sysActCode      = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	sysIdentifierV2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
	sysDegreeV2     = "http://terminology.hl7.org/CodeSystem/v2-0360"
	sysObsCategory  = "http://terminology.hl7.org/CodeSystem/observation-category"
	sysCondClinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	sysCondVerify   = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	sysCondCategory = "http://terminology.hl7.org/CodeSystem/condition-category"
	sysDocCategory  = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"

	// SysTags is the code system of ChartGuard's demo tags (meta.tag):
	// "vip" (p7) and "employee" (p8).
	SysTags = "http://chartguard.example/tags"
)

var givenFemale = []string{"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara",
	"Susan", "Jessica", "Sarah", "Karen", "Aisha", "Mei", "Priya", "Sofia", "Fatima", "Olga",
	"Ana", "Keiko", "Amara", "Ingrid"}

var givenMale = []string{"James", "Robert", "John", "Michael", "David", "William", "Richard",
	"Joseph", "Thomas", "Daniel", "Ahmed", "Wei", "Raj", "Carlos", "Dmitri", "Kwame",
	"Hiroshi", "Luca", "Omar", "Sven"}

var families = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller",
	"Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Nguyen", "Kim", "Patel", "Chen",
	"Okafor", "Kowalski", "Rossi", "Haddad", "Tanaka", "O'Brien", "Andersen", "Silva", "Cohen"}

var streets = []string{"Maple Street", "Oak Avenue", "Cedar Lane", "Elm Street", "Pine Road",
	"Lakeview Drive", "Hillcrest Avenue", "Sunset Boulevard", "River Road", "Park Place"}

type place struct{ city, state, postal string }

var places = []place{{"Springfield", "MA", "01103"}, {"Riverside", "CA", "92501"},
	{"Fairview", "TN", "37062"}, {"Madison", "WI", "53703"}, {"Georgetown", "TX", "78626"},
	{"Salem", "OR", "97301"}}

type obsCode struct {
	code, display, unit, ucum, category string
	lo, hi                              float64
	decimals                            int
}

var obsCodes = []obsCode{
	{"8867-4", "Heart rate", "/min", "/min", "vital-signs", 52, 108, 0},
	{"8480-6", "Systolic blood pressure", "mm[Hg]", "mm[Hg]", "vital-signs", 98, 165, 0},
	{"8462-4", "Diastolic blood pressure", "mm[Hg]", "mm[Hg]", "vital-signs", 58, 102, 0},
	{"29463-7", "Body weight", "kg", "kg", "vital-signs", 45, 125, 1},
	{"8302-2", "Body height", "cm", "cm", "vital-signs", 150, 196, 1},
	{"8310-5", "Body temperature", "Cel", "Cel", "vital-signs", 36.1, 38.4, 1},
	{"2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", "mg/dL", "laboratory", 68, 190, 0},
	{"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "g/dL", "laboratory", 10.5, 17.5, 1},
	{"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "%", "laboratory", 4.6, 9.8, 1},
	{"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", "laboratory", 135, 265, 0},
}

type condCode struct{ code, display string }

var conditions = []condCode{
	{"38341003", "Hypertensive disorder, systemic arterial"},
	{"44054006", "Diabetes mellitus type 2"},
	{"195967001", "Asthma"},
	{"55822004", "Hyperlipidemia"},
	{"239873007", "Osteoarthritis of knee"},
	{"40055000", "Chronic sinusitis"},
	{"15777000", "Prediabetes"},
	{"162864005", "Body mass index 30+ - obesity"},
	{"10509002", "Acute bronchitis"},
	{"444814009", "Viral sinusitis"},
}

// Sensitive conditions: labelled PSY or HIV (v3-ActCode) and R.
var (
	psyConditions = []condCode{{"35489007", "Depressive disorder"},
		{"370143000", "Major depressive disorder"}, {"197480006", "Anxiety disorder"}}
	hivCondition = condCode{"86406008", "Human immunodeficiency virus infection"}
)

type medCode struct{ code, display, dosage string }

var meds = []medCode{
	{"314076", "lisinopril 10 MG Oral Tablet", "Take 1 tablet by mouth once daily"},
	{"197361", "amlodipine 5 MG Oral Tablet", "Take 1 tablet by mouth once daily"},
	{"860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet", "Take 1 tablet by mouth with the evening meal"},
	{"259255", "atorvastatin 80 MG Oral Tablet", "Take 1 tablet by mouth at bedtime"},
	{"310798", "hydrochlorothiazide 25 MG Oral Tablet", "Take 1 tablet by mouth every morning"},
	{"895994", "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler", "Inhale 2 puffs twice daily"},
	{"310965", "ibuprofen 200 MG Oral Tablet", "Take 1 to 2 tablets every 6 hours as needed for pain"},
}

var psyMed = medCode{"312938", "sertraline 50 MG Oral Tablet", "Take 1 tablet by mouth once daily"}

type docType struct{ code, display string }

var (
	docProgress = docType{"11506-3", "Progress note"}
	docHistory  = docType{"34117-2", "History and physical note"}
	docConsult  = docType{"11488-4", "Consult note"}
)

type encClass struct{ code, display, typeCode, typeDisplay string }

var encClasses = []encClass{
	{"AMB", "ambulatory", "185349003", "Encounter for check up"},
	{"EMER", "emergency", "50849002", "Emergency room admission"},
	{"IMP", "inpatient encounter", "32485007", "Hospital admission"},
}
