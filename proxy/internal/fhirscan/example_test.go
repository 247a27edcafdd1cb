package fhirscan_test

import (
	"fmt"
	"slices"

	"github.com/chartguard/chartguard/proxy/internal/fhirscan"
)

func ExampleFilter() {
	body := []byte(`{"resourceType":"Bundle","type":"searchset","total":2,"entry":[` +
		`{"fullUrl":"http://up/fhir/Observation/o1","resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}},` +
		`{"fullUrl":"http://up/fhir/Observation/o2","resource":{"resourceType":"Observation","id":"o2","subject":{"reference":"Patient/p2"}}}]}`)
	opts := fhirscan.Options{
		Bases:   []string{"http://up/fhir"},
		Rewrite: func(u string) string { return "https://emr.example.org" + u[len("http://up"):] },
	}
	res, err := fhirscan.Filter(body, opts, func(r fhirscan.Resource) (bool, error) {
		return slices.Equal(r.Patients, []string{"p1"}), nil // the caller asks the policy here
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("withheld:", res.Denied)
	fmt.Println(string(res.Body))
	// Output:
	// withheld: 1
	// {"resourceType":"Bundle","type":"searchset","entry":[{"fullUrl":"https://emr.example.org/fhir/Observation/o1","resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}},{"resource":{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"suppressed","diagnostics":"Some results were removed because you are not permitted to see them."}]},"search":{"mode":"outcome"}}]}
}
