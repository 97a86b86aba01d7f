package demo

// Read-only tables the generator draws from. Patterns use '#' for a digit
// and '?' for an upper-case letter (see gen.fill).

// country describes how people write addresses, phone numbers and bank
// accounts in one country.
type country struct {
	code     string // ISO 3166-1 alpha-2: customers.country, accounts.country
	name     string // in shipping addresses
	currency string // ISO 4217: orders.currency
	lang     string // profile preferences
	tld      string // tenants' company domains
	weight   int    // share of customers living there
	phones   []string
	cities   []city
	streets  []string // local street names; empty: gofakeit streets
	// numberFirst writes "12 High Street" rather than "Hauptstraße 12".
	numberFirst bool
	// numberComma writes "Via Roma, 12" rather than "Via Roma 12".
	numberComma bool
	// zipAfterCity writes "London SW1A 1AA" and "Austin, TX 78701"
	// rather than "10115 Berlin".
	zipAfterCity bool
	iban         string // BBAN pattern; empty: no IBAN (US)
	// banks replace the leading "????" of the BBAN pattern, if any.
	banks   []string
	ssn     string // national identifier pattern, stored under profile.ssn
	domains []string
	// firstNames and lastNames are local names; empty: gofakeit names.
	firstNames, lastNames []string
	// twoSurnames: Spanish full names carry both surnames.
	twoSurnames bool
}

// city is a city with its region (US state) and a zip pattern whose
// leading characters match the real area.
type city struct {
	name, region, zip string
}

// countries are the markets of the demo's tenants and their customers.
// The first entries come first for small scales: accounts are spread over
// them in order before random picks start.
var countries = [...]country{
	{
		code: "US", name: "United States", currency: "USD", lang: "en", tld: "com", weight: 30,
		phones: []string{"+1 (2##) ###-####", "(3##) 5##-####", "4##-###-####", "+1 6##.###.####", "(7##) ###-#### ext. ##"},
		cities: []city{
			{"New York", "NY", "100##"}, {"Los Angeles", "CA", "900##"}, {"Chicago", "IL", "606##"},
			{"Houston", "TX", "770##"}, {"Austin", "TX", "787##"}, {"Seattle", "WA", "981##"},
			{"Denver", "CO", "802##"}, {"Boston", "MA", "021##"}, {"Miami", "FL", "331##"},
			{"San Francisco", "CA", "941##-####"},
		},
		numberFirst: true, zipAfterCity: true,
		ssn:     "###-##-####",
		domains: []string{"gmail.com", "gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "aol.com", "comcast.net"},
	},
	{
		code: "DE", name: "Germany", currency: "EUR", lang: "de", tld: "de", weight: 20,
		phones: []string{"+49 151 ########", "0151 ########", "+49 30 ########", "030 ########", "+49 (0)89 #######", "0176/########"},
		cities: []city{
			{"Berlin", "", "10###"}, {"Hamburg", "", "20###"}, {"München", "", "80###"}, {"Köln", "", "50###"},
			{"Frankfurt am Main", "", "60###"}, {"Stuttgart", "", "70###"}, {"Düsseldorf", "", "40###"},
			{"Leipzig", "", "04###"}, {"Dresden", "", "01###"},
		},
		streets: []string{"Hauptstraße", "Bahnhofstraße", "Gartenstraße", "Schillerstraße", "Goethestraße",
			"Lindenallee", "Am Markt", "Friedrichstraße", "Königsallee", "Schulweg", "Weißdornweg"},
		iban:    "##################",
		ssn:     "## ### ### ###",
		domains: []string{"gmail.com", "web.de", "gmx.de", "t-online.de", "gmx.net", "outlook.de", "posteo.de"},
		firstNames: []string{"Lukas", "Leon", "Finn", "Jonas", "Paul", "Maximilian", "Felix", "Anna", "Lena", "Lea",
			"Hannah", "Sophie", "Marie", "Jürgen", "Uwe", "Sabine", "Ursula", "Jörg", "Björn", "Günther"},
		lastNames: []string{"Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
			"Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Zimmermann",
			"Krüger", "Weiß", "Groß"},
	},
	{
		code: "GB", name: "United Kingdom", currency: "GBP", lang: "en", tld: "co.uk", weight: 15,
		phones: []string{"+44 7### ######", "07### ######", "+44 20 7### ####", "020 7### ####", "(0161) ### ####"},
		cities: []city{
			{"London", "", "SW1# #??"}, {"London", "", "E1# #??"}, {"Manchester", "", "M# #??"},
			{"Birmingham", "", "B1# #??"}, {"Leeds", "", "LS# #??"}, {"Glasgow", "", "G# #??"},
			{"Edinburgh", "", "EH# #??"}, {"Bristol", "", "BS# #??"}, {"Liverpool", "", "L# #??"},
		},
		streets: []string{"High Street", "Station Road", "Church Lane", "Victoria Road", "Park Avenue", "Mill Lane",
			"Queen's Road", "King Street", "The Crescent"},
		numberFirst: true, zipAfterCity: true,
		iban:    "????##############",
		banks:   []string{"NWBK", "BARC", "HBUK", "LOYD", "MIDL"},
		ssn:     "?? ## ## ## ?",
		domains: []string{"gmail.com", "gmail.com", "hotmail.co.uk", "btinternet.com", "yahoo.co.uk", "outlook.com", "sky.com"},
	},
	{
		code: "FR", name: "France", currency: "EUR", lang: "fr", tld: "fr", weight: 12,
		phones: []string{"+33 6 ## ## ## ##", "06 ## ## ## ##", "07 ## ## ## ##", "+33 1 ## ## ## ##", "01.##.##.##.##"},
		cities: []city{
			{"Paris", "", "750##"}, {"Lyon", "", "6900#"}, {"Marseille", "", "130##"}, {"Toulouse", "", "310##"},
			{"Nice", "", "060##"}, {"Nantes", "", "440##"}, {"Bordeaux", "", "330##"}, {"Lille", "", "590##"},
			{"Strasbourg", "", "670##"},
		},
		streets: []string{"rue de Rivoli", "avenue des Champs-Élysées", "boulevard Saint-Germain", "rue Victor Hugo",
			"rue de la République", "place Bellecour", "rue du Faubourg Saint-Honoré", "avenue Jean Jaurès", "rue Nationale"},
		numberFirst: true,
		iban:        "#######################",
		ssn:         "# ## ## ## ### ### ##",
		domains:     []string{"gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr", "sfr.fr", "wanadoo.fr"},
		firstNames: []string{"Jean", "Pierre", "Louis", "Hugo", "Lucas", "Théo", "Étienne", "François", "Chloé", "Camille",
			"Léa", "Manon", "Inès", "Émilie", "Hélène", "Céline", "Amélie", "Zoé"},
		lastNames: []string{"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
			"Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Fournier", "Girard"},
	},
	{
		code: "NL", name: "Netherlands", currency: "EUR", lang: "nl", tld: "nl", weight: 8,
		phones: []string{"+31 6 ########", "06-########", "06 ## ## ## ##", "+31 20 ### ####", "020-#######"},
		cities: []city{
			{"Amsterdam", "", "10## ??"}, {"Rotterdam", "", "30## ??"}, {"Den Haag", "", "25## ??"},
			{"Utrecht", "", "35## ??"}, {"Eindhoven", "", "56## ??"}, {"Groningen", "", "97## ??"},
		},
		streets: []string{"Kerkstraat", "Dorpsstraat", "Prinsengracht", "Keizersgracht", "Stationsweg", "Molenweg",
			"Nieuwstraat", "Julianalaan"},
		iban:    "????##########",
		banks:   []string{"ABNA", "INGB", "RABO", "SNSB", "TRIO"},
		ssn:     "#########",
		domains: []string{"gmail.com", "ziggo.nl", "kpnmail.nl", "hotmail.nl", "outlook.com", "xs4all.nl"},
		firstNames: []string{"Daan", "Sem", "Lucas", "Bram", "Jesse", "Thijs", "Sanne", "Emma", "Julia", "Fleur",
			"Anouk", "Lotte", "Femke", "Joost", "Pieter", "Willem"},
		lastNames: []string{"de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
			"Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen"},
	},
	{
		code: "ES", name: "Spain", currency: "EUR", lang: "es", tld: "es", weight: 8,
		phones: []string{"+34 6## ### ###", "6## ## ## ##", "+34 91 ### ## ##", "7## ### ###"},
		cities: []city{
			{"Madrid", "", "280##"}, {"Barcelona", "", "080##"}, {"Valencia", "", "460##"}, {"Sevilla", "", "410##"},
			{"Bilbao", "", "480##"}, {"Málaga", "", "290##"}, {"Zaragoza", "", "500##"},
		},
		streets: []string{"Calle Mayor", "Gran Vía", "Calle de Alcalá", "Paseo de la Castellana", "Avenida Diagonal",
			"Calle Serrano", "Plaza Mayor", "Carrer de Balmes", "Calle Real"},
		numberComma: true,
		iban:        "####################",
		ssn:         "########?",
		domains:     []string{"gmail.com", "hotmail.es", "yahoo.es", "telefonica.net", "outlook.es"},
		firstNames: []string{"Alejandro", "Pablo", "Hugo", "Álvaro", "Javier", "Sergio", "José", "Lucía", "María",
			"Paula", "Sofía", "Carmen", "Laura", "Marta", "Nerea", "Iñaki", "Begoña"},
		lastNames: []string{"García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez",
			"Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero",
			"Navarro", "Torres", "Domínguez", "Gutiérrez", "Ibáñez"},
		twoSurnames: true,
	},
	{
		code: "IT", name: "Italy", currency: "EUR", lang: "it", tld: "it", weight: 7,
		phones: []string{"+39 3## ### ####", "3## ### ####", "+39 06 #### ####", "02 ########", "+39 02 ### ####"},
		cities: []city{
			{"Roma", "", "001##"}, {"Milano", "", "201##"}, {"Napoli", "", "801##"}, {"Torino", "", "101##"},
			{"Firenze", "", "501##"}, {"Bologna", "", "401##"}, {"Venezia", "", "301##"},
		},
		streets: []string{"Via Roma", "Via Garibaldi", "Corso Vittorio Emanuele II", "Via Dante", "Piazza del Duomo",
			"Via Mazzini", "Via Cavour", "Viale Europa"},
		numberComma: true,
		iban:        "?######################",
		ssn:         "??????##?##?###?",
		domains:     []string{"gmail.com", "libero.it", "virgilio.it", "alice.it", "tiscali.it", "hotmail.it"},
		firstNames: []string{"Francesco", "Alessandro", "Lorenzo", "Matteo", "Leonardo", "Andrea", "Giuseppe", "Sofia",
			"Giulia", "Aurora", "Alice", "Ginevra", "Chiara", "Francesca", "Niccolò"},
		lastNames: []string{"Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
			"Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Lombardi", "D'Angelo"},
	},
}

// Plans, with their share of accounts and how much bigger their tenants
// are than a free one (customers; users grow more slowly).
var plans = [...]struct {
	name      string
	weight    int
	customers int
	users     int
}{
	{"free", 40, 1, 1},
	{"team", 30, 4, 3},
	{"business", 20, 10, 6},
	{"enterprise", 10, 30, 15},
}

// Order statuses; payments exist for paid, shipped, delivered and
// refunded orders (refunds have a second, negative, payment).
const (
	statusPending   = "pending"
	statusPaid      = "paid"
	statusShipped   = "shipped"
	statusDelivered = "delivered"
	statusCancelled = "cancelled"
	statusRefunded  = "refunded"
)

// userRoles besides the one owner of each account, with weights.
var userRoles = [...]struct {
	name   string
	weight int
}{{"admin", 15}, {"member", 60}, {"billing", 10}, {"viewer", 15}}

var ticketSubjects = [...]string{
	"Refund for order #%d",
	"Where is my order #%d?",
	"Invoice needed for order #%d",
	"Wrong item received (order #%d)",
	"Double charged for order #%d",
	"Card declined at checkout",
	"Cannot log in",
	"Change of address",
	"Cancel my subscription",
	"Update payment method",
	"GDPR data access request",
	"Please delete my account",
	"Discount code not working",
	"Package arrived damaged",
}

var ticketTags = [...]string{"billing", "shipping", "refund", "login", "gdpr", "urgent", "vip", "bug", "feedback", "payment", "address-change"}

var ticketChannels = [...]string{"email", "email", "chat", "web", "phone"}

var ticketPriorities = [...]string{"low", "normal", "normal", "normal", "high", "urgent"}

var appPaths = [...]string{"/dashboard", "/customers", "/customers/%d", "/orders", "/orders/%d", "/reports/revenue",
	"/settings/billing", "/settings/team", "/tickets", "/tickets/%d", "/integrations", "/exports"}

var referrers = [...]string{"", "", "https://www.google.com/", "https://www.bing.com/", "https://news.ycombinator.com/",
	"https://www.linkedin.com/", "https://duckduckgo.com/"}

var signupSources = [...]string{"organic", "google_ads", "newsletter", "referral", "facebook", "instagram", "partner", "import"}

var loyaltyTiers = [...]string{"bronze", "silver", "gold", "platinum"}

var emailTemplates = [...]string{"order_confirmation", "shipping_update", "password_reset", "invoice", "welcome", "review_request"}

var smsTemplates = [...]string{"delivery_update", "otp", "appointment_reminder", "shipping_update"}

var exportTables = [...]string{"customers", "orders", "payments", "tickets"}

var loginMethods = [...]string{"password", "password", "sso", "magic_link", "google"}

// globalDomains are email providers used in every country.
var globalDomains = [...]string{"gmail.com", "outlook.com", "proton.me", "icloud.com", "yahoo.com"}
