package proxy

// patientCompartment lists, per resource type, the search parameters of the
// FHIR R4 Patient CompartmentDefinition
// (http://hl7.org/fhir/R4/compartmentdefinition-patient.html). A type that is
// not listed is outside the compartment: its requests touch no patient.
//
// Two deliberate omissions: Patient's "link" (Patient?link=p1 returns other
// patients) and Group's "member" (a Group lists many patients). Requests for
// both are decided as "patients unknown".
var patientCompartment = map[string][]string{
	"Account":                     {"subject"},
	"AdverseEvent":                {"subject"},
	"AllergyIntolerance":          {"patient", "recorder", "asserter"},
	"Appointment":                 {"actor"},
	"AppointmentResponse":         {"actor"},
	"AuditEvent":                  {"patient"},
	"Basic":                       {"patient", "author"},
	"BodyStructure":               {"patient"},
	"CarePlan":                    {"patient", "performer"},
	"CareTeam":                    {"patient", "participant"},
	"ChargeItem":                  {"subject"},
	"Claim":                       {"patient", "payee"},
	"ClaimResponse":               {"patient"},
	"ClinicalImpression":          {"subject"},
	"Communication":               {"subject", "sender", "recipient"},
	"CommunicationRequest":        {"subject", "sender", "recipient", "requester"},
	"Composition":                 {"subject", "author", "attester"},
	"Condition":                   {"patient", "asserter"},
	"Consent":                     {"patient"},
	"Coverage":                    {"policy-holder", "subscriber", "beneficiary", "payor"},
	"CoverageEligibilityRequest":  {"patient"},
	"CoverageEligibilityResponse": {"patient"},
	"DetectedIssue":               {"patient"},
	"DeviceRequest":               {"subject", "performer"},
	"DeviceUseStatement":          {"subject"},
	"DiagnosticReport":            {"subject"},
	"DocumentManifest":            {"subject", "author", "recipient"},
	"DocumentReference":           {"subject", "author"},
	"Encounter":                   {"patient"},
	"EnrollmentRequest":           {"subject"},
	"EpisodeOfCare":               {"patient"},
	"ExplanationOfBenefit":        {"patient", "payee"},
	"FamilyMemberHistory":         {"patient"},
	"Flag":                        {"patient"},
	"Goal":                        {"patient"},
	"Group":                       {},
	"ImagingStudy":                {"patient"},
	"Immunization":                {"patient"},
	"ImmunizationEvaluation":      {"patient"},
	"ImmunizationRecommendation":  {"patient"},
	"Invoice":                     {"subject", "patient", "recipient"},
	"List":                        {"subject", "source"},
	"MeasureReport":               {"patient"},
	"Media":                       {"subject"},
	"MedicationAdministration":    {"patient", "performer", "subject"},
	"MedicationDispense":          {"subject", "patient", "receiver"},
	"MedicationRequest":           {"subject"},
	"MedicationStatement":         {"subject"},
	"MolecularSequence":           {"patient"},
	"NutritionOrder":              {"patient"},
	"Observation":                 {"subject", "performer"},
	"Patient":                     {},
	"Person":                      {"patient"},
	"Procedure":                   {"patient", "performer"},
	"Provenance":                  {"patient"},
	"QuestionnaireResponse":       {"subject", "author"},
	"RelatedPerson":               {"patient"},
	"RequestGroup":                {"subject", "participant"},
	"ResearchSubject":             {"individual"},
	"RiskAssessment":              {"subject"},
	"Schedule":                    {"actor"},
	"ServiceRequest":              {"subject", "performer"},
	"Specimen":                    {"subject"},
	"SupplyDelivery":              {"patient"},
	"SupplyRequest":               {"subject"},
	"VisionPrescription":          {"patient"},
}

// isPatientParam reports whether search parameter name (without modifier)
// names the patient for type t: "patient", "subject" and "beneficiary" on any
// compartment type, the type's compartment parameters, and "_id" on Patient.
func isPatientParam(t, name string) bool {
	if t == "Patient" {
		return name == "_id"
	}
	params, ok := patientCompartment[t]
	if !ok || t == "Group" {
		return false
	}
	switch name {
	case "patient", "subject", "beneficiary":
		return true
	}
	for _, p := range params {
		if p == name {
			return true
		}
	}
	return false
}

// nonPatientTypes hold no patient data: directory, terminology, conformance
// and knowledge resources. A type in neither this set nor the compartment
// (Task, Device, …) may still reference a patient, so its requests are
// decided as "patients unknown" rather than "none".
var nonPatientTypes = map[string]bool{
	"Practitioner": true, "PractitionerRole": true, "Organization": true,
	"OrganizationAffiliation": true, "Location": true, "HealthcareService": true,
	"Endpoint": true, "Slot": true, "Medication": true, "MedicationKnowledge": true,
	"Substance": true, "ValueSet": true, "CodeSystem": true, "ConceptMap": true,
	"NamingSystem": true, "StructureDefinition": true, "StructureMap": true,
	"SearchParameter": true, "OperationDefinition": true, "CapabilityStatement": true,
	"CompartmentDefinition": true, "ImplementationGuide": true, "Questionnaire": true,
	"PlanDefinition": true, "ActivityDefinition": true, "Library": true, "Measure": true,
	"TerminologyCapabilities": true, "GraphDefinition": true, "MessageDefinition": true,
}
