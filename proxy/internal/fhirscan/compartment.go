package fhirscan

import "strings"

// compartmentSource is the definition [patientElements] follows.
const compartmentSource = "http://hl7.org/fhir/R4/compartmentdefinition-patient.html"

// patientElements maps each resource type of the FHIR R4 (4.0.1) Patient
// compartment to the elements its compartment search parameters select, as
// paths from the resource root. Each path follows the parameter's FHIRPath
// expression in the R4 search parameter registry
// (http://hl7.org/fhir/R4/searchparameter-registry.html); the comment names
// the parameters. A ".where(resolve() is Patient)" filter is dropped: only
// references that resolve to a Patient count anyway. Each step may hold an
// object or an array of objects; the last step holds References.
//
// Patient is in the compartment by its own id (its "link" parameter,
// Patient.link.other, is deliberately not used: exposing Patient/p1 exposes
// p1 only). A type that is not listed is outside the compartment.
var patientElements = map[string][][]string{
	"Account":                     {{"subject"}},                                                  // subject
	"AdverseEvent":                {{"subject"}},                                                  // subject
	"AllergyIntolerance":          {{"patient"}, {"recorder"}, {"asserter"}},                      // patient, recorder, asserter
	"Appointment":                 {{"participant", "actor"}},                                     // actor
	"AppointmentResponse":         {{"actor"}},                                                    // actor
	"AuditEvent":                  {{"agent", "who"}, {"entity", "what"}},                         // patient
	"Basic":                       {{"subject"}, {"author"}},                                      // patient, author
	"BodyStructure":               {{"patient"}},                                                  // patient
	"CarePlan":                    {{"subject"}, {"activity", "detail", "performer"}},             // patient, performer
	"CareTeam":                    {{"subject"}, {"participant", "member"}},                       // patient, participant
	"ChargeItem":                  {{"subject"}},                                                  // subject
	"Claim":                       {{"patient"}, {"payee", "party"}},                              // patient, payee
	"ClaimResponse":               {{"patient"}},                                                  // patient
	"ClinicalImpression":          {{"subject"}},                                                  // subject
	"Communication":               {{"subject"}, {"sender"}, {"recipient"}},                       // subject, sender, recipient
	"CommunicationRequest":        {{"subject"}, {"sender"}, {"recipient"}, {"requester"}},        // subject, sender, recipient, requester
	"Composition":                 {{"subject"}, {"author"}, {"attester", "party"}},               // subject, author, attester
	"Condition":                   {{"subject"}, {"asserter"}},                                    // patient, asserter
	"Consent":                     {{"patient"}},                                                  // patient
	"Coverage":                    {{"policyHolder"}, {"subscriber"}, {"beneficiary"}, {"payor"}}, // policy-holder, subscriber, beneficiary, payor
	"CoverageEligibilityRequest":  {{"patient"}},                                                  // patient
	"CoverageEligibilityResponse": {{"patient"}},                                                  // patient
	"DetectedIssue":               {{"patient"}},                                                  // patient
	"DeviceRequest":               {{"subject"}, {"performer"}},                                   // subject, performer
	"DeviceUseStatement":          {{"subject"}},                                                  // subject
	"DiagnosticReport":            {{"subject"}},                                                  // subject
	"DocumentManifest":            {{"subject"}, {"author"}, {"recipient"}},                       // subject, author, recipient
	"DocumentReference":           {{"subject"}, {"author"}},                                      // subject, author
	"Encounter":                   {{"subject"}},                                                  // patient
	"EnrollmentRequest":           {{"candidate"}},                                                // subject
	"EpisodeOfCare":               {{"patient"}},                                                  // patient
	"ExplanationOfBenefit":        {{"patient"}, {"payee", "party"}},                              // patient, payee
	"FamilyMemberHistory":         {{"patient"}},                                                  // patient
	"Flag":                        {{"subject"}},                                                  // patient
	"Goal":                        {{"subject"}},                                                  // patient
	"Group":                       {{"member", "entity"}},                                         // member
	"ImagingStudy":                {{"subject"}},                                                  // patient
	"Immunization":                {{"patient"}},                                                  // patient
	"ImmunizationEvaluation":      {{"patient"}},                                                  // patient
	"ImmunizationRecommendation":  {{"patient"}},                                                  // patient
	"Invoice":                     {{"subject"}, {"recipient"}},                                   // subject, patient, recipient
	"List":                        {{"subject"}, {"source"}},                                      // subject, source
	"MeasureReport":               {{"subject"}},                                                  // patient
	"Media":                       {{"subject"}},                                                  // subject
	"MedicationAdministration":    {{"subject"}, {"performer", "actor"}},                          // patient, performer, subject
	"MedicationDispense":          {{"subject"}, {"receiver"}},                                    // subject, patient, receiver
	"MedicationRequest":           {{"subject"}},                                                  // subject
	"MedicationStatement":         {{"subject"}},                                                  // subject
	"MolecularSequence":           {{"patient"}},                                                  // patient
	"NutritionOrder":              {{"patient"}},                                                  // patient
	"Observation":                 {{"subject"}, {"performer"}},                                   // subject, performer
	"Patient":                     nil,                                                            // the Patient itself (link: see above)
	"Person":                      {{"link", "target"}},                                           // patient
	"Procedure":                   {{"subject"}, {"performer", "actor"}},                          // patient, performer
	"Provenance":                  {{"target"}},                                                   // patient
	"QuestionnaireResponse":       {{"subject"}, {"author"}},                                      // subject, author
	"RelatedPerson":               {{"patient"}},                                                  // patient
	"RequestGroup":                {{"subject"}, {"action", "participant"}},                       // subject, participant
	"ResearchSubject":             {{"individual"}},                                               // individual
	"RiskAssessment":              {{"subject"}},                                                  // subject
	"Schedule":                    {{"actor"}},                                                    // actor
	"ServiceRequest":              {{"subject"}, {"performer"}},                                   // subject, performer
	"Specimen":                    {{"subject"}},                                                  // subject
	"SupplyDelivery":              {{"patient"}},                                                  // patient
	"SupplyRequest":               {{"deliverTo"}},                                                // subject
	"VisionPrescription":          {{"patient"}},                                                  // patient
}

// CompartmentPaths returns the dotted paths of typ's elements that hold
// its Patient-compartment references ("subject", "participant.member"),
// or nil for a type outside the compartment.
func CompartmentPaths(typ string) []string {
	var out []string
	for _, p := range patientElements[typ] {
		out = append(out, strings.Join(p, "."))
	}
	return out
}
