package scan

import "testing"

func TestQuasiIdentifier(t *testing.T) {
	tests := []struct {
		column string
		kind   string // "" when the name is not a quasi-identifier
	}{
		// Birth dates and places.
		{"birth_date", QuasiBirthDate},
		{"birthDate", QuasiBirthDate},
		{"dob", QuasiBirthDate},
		{"date_of_birth", QuasiBirthDate},
		{"DateOfBirth", QuasiBirthDate},
		{"year_of_birth", QuasiBirthDate},
		{"birthyear", QuasiBirthDate},
		{"born_on", QuasiBirthDate},
		{"birth_country", QuasiBirthplace},
		{"country_of_birth", QuasiBirthplace},
		{"place_of_birth", QuasiBirthplace},
		{"birthplace", QuasiBirthplace},
		// Ages, but not age limits.
		{"age", QuasiAge},
		{"age_at_admission", QuasiAge},
		{"patient_age", QuasiAge},
		{"agegroup", QuasiAge},
		{"age_group", QuasiAge},
		{"min_age", ""},
		{"max_age_seconds", ""},
		{"usage", ""},
		{"mileage", ""},
		{"page", ""},
		{"stage", ""},
		// Dates of death.
		{"deceased_on", QuasiDeathDate},
		{"date_of_death", QuasiDeathDate},
		// Postal codes.
		{"zip", QuasiPostalCode},
		{"zip_code", QuasiPostalCode},
		{"zipcode", QuasiPostalCode},
		{"postal_code", QuasiPostalCode},
		{"postalCode", QuasiPostalCode},
		{"postcode", QuasiPostalCode},
		{"billing_postcode", QuasiPostalCode},
		{"plz", QuasiPostalCode},
		// Gender.
		{"gender", QuasiGender},
		{"sex", QuasiGender},
		{"pronouns", QuasiGender},
		// Places.
		{"city", QuasiCity},
		{"shipping_city", QuasiCity},
		{"home_town", QuasiCity},
		{"region", QuasiRegion},
		{"province", QuasiRegion},
		{"county", QuasiRegion},
		{"billing_state", QuasiRegion},
		{"state_code", QuasiRegion},
		{"state", ""},
		{"order_state", ""},
		{"country", QuasiCountry},
		{"country_code", QuasiCountry},
		{"countryCode", QuasiCountry},
		{"shipping_country", QuasiCountry},
		// Nationality, language, occupation and the rest.
		{"nationality", QuasiNationality},
		{"citizenship", QuasiNationality},
		{"language", QuasiLanguage},
		{"languages", QuasiLanguage},
		{"preferred_lang", QuasiLanguage},
		{"locale", QuasiLanguage},
		{"occupation", QuasiOccupation},
		{"job_title", QuasiOccupation},
		{"jobTitle", QuasiOccupation},
		{"profession", QuasiOccupation},
		{"ethnicity", QuasiEthnicity},
		{"race", QuasiEthnicity},
		{"marital_status", QuasiMaritalStatus},
		{"maritalStatus", QuasiMaritalStatus},
		{"religion", QuasiReligion},
		{"education_level", QuasiEducation},
		// References to other rows are not the data their name mentions.
		{"city_id", ""},
		{"country_id", ""},
		{"job_id", ""},
		{"region_uuid", ""},
		// Not quasi-identifiers.
		{"id", ""},
		{"email", ""},
		{"full_name", ""},
		{"created_at", ""},
		{"total", ""},
		{"status", ""},
		{"title", ""},
		{"blood_type", ""},
		{"", ""},
		{"_", ""},
	}
	for _, tc := range tests {
		kind, ok := QuasiIdentifier(tc.column)
		if kind != tc.kind || ok != (tc.kind != "") {
			t.Errorf("QuasiIdentifier(%q) = %q, %v; want %q, %v", tc.column, kind, ok, tc.kind, tc.kind != "")
		}
	}
}

// The classifier is separate from the rule proposals: columns the scan
// keeps as quasi-identifiers (city) and those it coarsens (zip, birth
// dates) are all quasi-identifiers, and the scan's own proposals for them
// are as before.
func TestQuasiIdentifierLeavesClassifyAlone(t *testing.T) {
	for _, tc := range []struct {
		c    Column
		rule string
	}{
		{col("city", "text"), "keep"},
		{col("zip", "text"), "{truncate: 3}"},
		{col("birth_date", "date"), "{truncate: year}"},
		{col("country", "char(2)"), "keep"},
	} {
		if _, ok := QuasiIdentifier(tc.c.Name); !ok {
			t.Errorf("%s is not a quasi-identifier", tc.c.Name)
		}
		if got := Classify("customers", tc.c).Rule; got != tc.rule {
			t.Errorf("Classify(%s) = %s, want %s", tc.c.Name, got, tc.rule)
		}
	}
}
