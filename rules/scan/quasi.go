package scan

// Quasi-identifier kinds, as QuasiIdentifier returns them.
const (
	QuasiBirthDate     = "birth_date"
	QuasiBirthplace    = "birthplace"
	QuasiAge           = "age"
	QuasiDeathDate     = "death_date"
	QuasiPostalCode    = "postal_code"
	QuasiGender        = "gender"
	QuasiCity          = "city"
	QuasiRegion        = "region"
	QuasiCountry       = "country"
	QuasiNationality   = "nationality"
	QuasiLanguage      = "language"
	QuasiOccupation    = "occupation"
	QuasiEthnicity     = "ethnicity"
	QuasiMaritalStatus = "marital_status"
	QuasiReligion      = "religion"
	QuasiEducation     = "education"
)

// QuasiIdentifier reports whether a column's name says it holds a
// quasi-identifier: a value that names nobody on its own but that,
// combined with a few others, singles people out (a birth date, a postal
// code and a gender identify most people in a census). kind is one of the
// Quasi constants.
//
// It reads the name only, with the same tokenizer as the rest of the scan
// (snake_case, camelCase, kebab-case). A name whose last word is id, ids
// or uuid ("city_id") references another row and is not taken; neither
// is a bare "state", more often a workflow state than a region
// ("billing_state" and "state_code" are regions). Words that
// qualify an age as a limit rather than a person's ("min_age",
// "max_age") are not ages.
func QuasiIdentifier(column string) (kind string, ok bool) {
	w := newWords(column)
	if len(w.toks) == 0 {
		return "", false
	}
	switch w.toks[len(w.toks)-1] {
	case "id", "ids", "uuid":
		return "", false
	}
	if kind = quasiKind(w); kind == "" {
		return "", false
	}
	return kind, true
}

// quasiKind is QuasiIdentifier's classification of a tokenized name, ""
// for none. The order matters where words overlap: a birth country is a
// birthplace, not a country.
func quasiKind(w words) string {
	birth := w.has("birth", "born", "dob", "yob", "birthday", "birthdate", "birthyear") ||
		w.contains("dateofbirth", "birthdate", "birthday", "birthyear", "yearofbirth")
	switch {
	case birth && w.has("place", "country", "city", "town", "region", "state", "location") ||
		w.contains("birthplace", "placeofbirth", "countryofbirth", "cityofbirth"):
		return QuasiBirthplace
	case birth:
		return QuasiBirthDate
	case w.has("age", "ages") && !w.has("min", "max", "minimum", "maximum", "limit", "cache", "ttl") ||
		w.is("agegroup", "ageband", "agebracket", "agerange", "ageyears", "ageinyears"):
		return QuasiAge
	case w.has("deceased", "death", "died", "dod") || w.contains("dateofdeath", "deathdate"):
		return QuasiDeathDate
	case w.has("zip", "zipcode", "postcode", "postal", "postalcode", "plz") || w.contains("postalcode", "zipcode", "postcode"):
		return QuasiPostalCode
	case w.has("gender", "genders", "sex", "pronoun", "pronouns"):
		return QuasiGender
	case w.has("ethnicity", "ethnicities", "ethnic", "race", "ancestry"):
		return QuasiEthnicity
	case w.has("marital", "married") || w.contains("maritalstatus", "civilstatus", "relationshipstatus", "familystatus"):
		return QuasiMaritalStatus
	case w.has("religion", "religious", "faith", "denomination"):
		return QuasiReligion
	case w.has("nationality", "nationalities", "citizenship", "citizen"):
		return QuasiNationality
	case w.has("city", "cities", "town", "hometown", "municipality", "village", "suburb", "borough", "neighborhood", "neighbourhood"):
		return QuasiCity
	case w.has("region", "regions", "province", "county", "district", "prefecture", "canton", "territory", "bundesland") ||
		w.has("state") && w.has("address", "billing", "shipping", "home", "mailing", "residence", "residential", "province", "us") ||
		w.is("statecode", "stateprovince", "stateorprovince", "statename"):
		return QuasiRegion
	case w.has("country", "countries") || w.contains("countrycode", "countryname", "countryiso"):
		return QuasiCountry
	case w.has("language", "languages", "lang", "langs", "locale", "mothertongue"):
		return QuasiLanguage
	case w.has("occupation", "occupations", "profession", "job", "jobtitle", "employment") || w.contains("jobtitle", "jobrole"):
		return QuasiOccupation
	case w.has("education", "schooling") || w.contains("educationlevel", "highestdegree"):
		return QuasiEducation
	}
	return ""
}
