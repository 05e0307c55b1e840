//! Reference geography: real airports, the 50 cities demo hotels and flight routes are built around, and fictional
//! demo airlines.
//!
//! The data lives in `crates/catalog/data/*.csv`, is compiled into the binary with `include_str!` and parsed once,
//! on first use, into static tables. It is constant and needs no database, so schedules, seeding and search all
//! agree on the same codes, time zones and coordinates without a migration. The tests below prove that the data
//! parses and is consistent (unique codes, known time zones, every referenced airport present), which is why
//! parsing may treat a malformed row as a bug.
//!
//! Names are ASCII (`Zurich`, `Sao Paulo`) so that plain typing finds them. An airport's `city` is the city it
//! serves, not the municipality it sits in (Newark is listed under `New York`).

use std::collections::HashMap;
use std::sync::LazyLock;

use time_tz::timezones;

const AIRPORTS_CSV: &str = include_str!("../data/airports.csv");
const CITIES_CSV: &str = include_str!("../data/cities.csv");
const AIRLINES_CSV: &str = include_str!("../data/airlines.csv");

const EARTH_RADIUS_KM: f64 = 6371.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Airport {
    /// IATA code, three uppercase letters.
    pub code: &'static str,
    pub name: &'static str,
    /// The city the airport serves, as named in `cities.csv` when it is one of those.
    pub city: &'static str,
    /// ISO 3166-1 alpha-2.
    pub country: &'static str,
    /// IANA name, resolvable with [`time_zone`].
    pub time_zone: &'static str,
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct City {
    pub name: &'static str,
    /// ISO 3166-1 alpha-2.
    pub country: &'static str,
    /// IANA name, resolvable with [`time_zone`].
    pub time_zone: &'static str,
    pub latitude: f64,
    pub longitude: f64,
    /// IATA codes of the airports serving the city, busiest first; never empty.
    pub airports: Vec<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Airline {
    /// Two uppercase letters or digits, shaped like an IATA designator. The airlines are fictional, so a code may
    /// coincide with a real carrier's.
    pub code: &'static str,
    pub name: &'static str,
    /// IATA code of the hub airport.
    pub home: &'static str,
}

static AIRPORTS: LazyLock<Vec<Airport>> = LazyLock::new(|| embedded(parse_airports(AIRPORTS_CSV)));
static AIRPORTS_BY_CODE: LazyLock<HashMap<&'static str, &'static Airport>> =
    LazyLock::new(|| airports().iter().map(|airport| (airport.code, airport)).collect());
static CITIES: LazyLock<Vec<City>> = LazyLock::new(|| embedded(parse_cities(CITIES_CSV)));
static AIRLINES: LazyLock<Vec<Airline>> = LazyLock::new(|| embedded(parse_airlines(AIRLINES_CSV)));

/// All airports, in file order: grouped by region, and a city's busiest airport before its others.
pub fn airports() -> &'static [Airport] {
    &AIRPORTS
}

/// The airport with this IATA code; the code is matched exactly, so it must be uppercase.
pub fn airport(code: &str) -> Option<&'static Airport> {
    AIRPORTS_BY_CODE.get(code).copied()
}

pub fn cities() -> &'static [City] {
    &CITIES
}

pub fn airlines() -> &'static [Airline] {
    &AIRLINES
}

/// The time zone with this IANA name (`Europe/London`), from the tz database compiled into `time-tz`.
pub fn time_zone(name: &str) -> Option<&'static time_tz::Tz> {
    timezones::get_by_name(name)
}

/// Today's date where the clocks of `zone` are (the UTC date for a zone not known): a hotel sells its nights by
/// its own calendar, so "tonight" is still on sale in Honolulu when it is tomorrow in UTC, and no longer in
/// Kiritimati when it is still today in UTC.
pub fn today_in(zone: &str, now: time::OffsetDateTime) -> time::Date {
    use time_tz::OffsetDateTimeExt;
    time_zone(zone).map_or(now.date(), |zone| now.to_timezone(zone).date())
}

/// The earliest date a clock shows anywhere now (UTC-12): no stay can check in before it.
pub fn earliest_today(now: time::OffsetDateTime) -> time::Date {
    (now - time::Duration::hours(12)).date()
}

/// Great-circle distance between two points given in degrees, by the haversine formula on a spherical earth.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (lat1_rad, lat2_rad) = (lat1.to_radians(), lat2.to_radians());
    let dlat_rad = (lat2 - lat1).to_radians();
    let dlon_rad = (lon2 - lon1).to_radians();
    let a = (dlat_rad / 2.0).sin().powi(2) + lat1_rad.cos() * lat2_rad.cos() * (dlon_rad / 2.0).sin().powi(2);
    // Rounding can push `a` a hair past 1 for antipodal points, and `asin` of that is NaN.
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// Airports matching `query` case-insensitively, best first, at most `limit` of them.
///
/// An exact code ranks first, then a code prefix, then a city or name prefix, then a city or name substring.
/// Within a rank, file order holds, so `lon` gives Heathrow before City. A blank query matches nothing.
pub fn search_airports(query: &str, limit: usize) -> Vec<&'static Airport> {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return Vec::new();
    }
    let mut ranked: Vec<(MatchRank, &'static Airport)> = airports()
        .iter()
        .filter_map(|airport| match_rank(airport.code, airport.city, airport.name, &query).map(|rank| (rank, airport)))
        .collect();
    // Stable, so ties keep file order.
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().take(limit).map(|(_, airport)| airport).collect()
}

/// How well an airport matches a search; lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchRank {
    Code,
    CodePrefix,
    NamePrefix,
    NameSubstring,
}

/// How well an airport given by code, city and name matches `query`, which must already be lowercase.
pub fn match_rank(code: &str, city: &str, name: &str, query: &str) -> Option<MatchRank> {
    let code = code.to_lowercase();
    if code == query {
        return Some(MatchRank::Code);
    }
    if code.starts_with(query) {
        return Some(MatchRank::CodePrefix);
    }
    let names = [city.to_lowercase(), name.to_lowercase()];
    if names.iter().any(|name| name.starts_with(query)) {
        return Some(MatchRank::NamePrefix);
    }
    if names.iter().any(|name| name.contains(query)) {
        return Some(MatchRank::NameSubstring);
    }
    None
}

/// A row of an embedded CSV file that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{file} line {line_no}: {reason}")]
struct DataError {
    file: &'static str,
    line_no: usize,
    reason: String,
}

/// The embedded files are constant and the tests parse them, so a failure here is a bug in the data.
fn embedded<T>(parsed: Result<T, DataError>) -> T {
    parsed.unwrap_or_else(|err| panic!("embedded geography data is malformed: {err}"))
}

/// Where a data row sits in an embedded CSV file, for error messages.
struct Line {
    file: &'static str,
    line_no: usize,
}

impl Line {
    fn error(&self, reason: impl Into<String>) -> DataError {
        DataError {
            file: self.file,
            line_no: self.line_no,
            reason: reason.into(),
        }
    }

    fn degrees(&self, field: &str, value: &str) -> Result<f64, DataError> {
        value
            .parse()
            .map_err(|_| self.error(format!("{field} {value:?} is not a number")))
    }
}

/// Splits `csv` into data rows of exactly `N` fields, skipping the header line. Fields are plain: no quoting, so
/// no value may contain a comma.
fn rows<const N: usize>(file: &'static str, csv: &'static str) -> Result<Vec<(Line, [&'static str; N])>, DataError> {
    csv.lines()
        .enumerate()
        .skip(1)
        .map(|(line_idx, text)| {
            let line = Line {
                file,
                line_no: line_idx + 1,
            };
            let fields: Vec<&'static str> = text.split(',').map(str::trim).collect();
            let n_fields = fields.len();
            let fields: [&'static str; N] = fields
                .try_into()
                .map_err(|_| line.error(format!("expected {N} fields, found {n_fields}")))?;
            Ok((line, fields))
        })
        .collect()
}

fn parse_airports(csv: &'static str) -> Result<Vec<Airport>, DataError> {
    rows::<7>("airports.csv", csv)?
        .into_iter()
        .map(|(line, [code, name, city, country, time_zone, latitude, longitude])| {
            Ok(Airport {
                code,
                name,
                city,
                country,
                time_zone,
                latitude: line.degrees("latitude", latitude)?,
                longitude: line.degrees("longitude", longitude)?,
            })
        })
        .collect()
}

fn parse_cities(csv: &'static str) -> Result<Vec<City>, DataError> {
    rows::<6>("cities.csv", csv)?
        .into_iter()
        .map(|(line, [name, country, time_zone, latitude, longitude, airports])| {
            let airports: Vec<&'static str> = airports.split_whitespace().collect();
            if airports.is_empty() {
                return Err(line.error(format!("city {name} has no airports")));
            }
            Ok(City {
                name,
                country,
                time_zone,
                latitude: line.degrees("latitude", latitude)?,
                longitude: line.degrees("longitude", longitude)?,
                airports,
            })
        })
        .collect()
}

fn parse_airlines(csv: &'static str) -> Result<Vec<Airline>, DataError> {
    rows::<3>("airlines.csv", csv)?
        .into_iter()
        .map(|(_, [code, name, home])| Ok(Airline { code, name, home }))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use time::macros::datetime;
    use time_tz::{Offset, TimeZone};

    use super::*;

    fn codes(found: &[&Airport]) -> Vec<&'static str> {
        found.iter().map(|airport| airport.code).collect()
    }

    fn assert_coordinates(what: &str, latitude: f64, longitude: f64) {
        assert!(
            (-90.0..=90.0).contains(&latitude),
            "{what}: latitude {latitude} out of range"
        );
        assert!(
            (-180.0..=180.0).contains(&longitude),
            "{what}: longitude {longitude} out of range"
        );
    }

    #[test]
    fn embedded_files_parse() {
        assert!(parse_airports(AIRPORTS_CSV).is_ok());
        assert!(parse_cities(CITIES_CSV).is_ok());
        assert!(parse_airlines(AIRLINES_CSV).is_ok());
    }

    #[test]
    fn a_row_with_a_missing_field_is_rejected_with_its_line() {
        let err = parse_airlines("code,name,home\nXA,Skyways Atlantic,LHR\nBQ,Borealis Wings\n").unwrap_err();
        assert_eq!(err.to_string(), "airlines.csv line 3: expected 3 fields, found 2");
    }

    #[test]
    fn a_malformed_coordinate_is_rejected() {
        let csv = "code,name,city,country,time_zone,latitude,longitude\nLHR,Heathrow,London,GB,Europe/London,north,0\n";
        assert!(
            parse_airports(csv)
                .unwrap_err()
                .to_string()
                .contains("latitude \"north\"")
        );
    }

    #[test]
    fn there_are_at_least_100_airports_and_exactly_50_cities() {
        assert!(airports().len() >= 100, "only {} airports", airports().len());
        assert_eq!(cities().len(), 50);
    }

    #[test]
    fn airport_codes_are_unique_three_uppercase_letters() {
        let mut seen = HashSet::new();
        for airport in airports() {
            assert!(
                airport.code.len() == 3 && airport.code.bytes().all(|b| b.is_ascii_uppercase()),
                "bad airport code {:?}",
                airport.code
            );
            assert!(seen.insert(airport.code), "duplicate airport code {}", airport.code);
            assert!(
                !airport.name.is_empty() && !airport.city.is_empty(),
                "{} lacks a name or city",
                airport.code
            );
        }
    }

    #[test]
    fn airline_codes_are_unique_two_uppercase_alphanumerics() {
        let mut seen = HashSet::new();
        for airline in airlines() {
            assert!(
                airline.code.len() == 2
                    && airline
                        .code
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
                "bad airline code {:?}",
                airline.code
            );
            assert!(seen.insert(airline.code), "duplicate airline code {}", airline.code);
            assert!(!airline.name.is_empty(), "{} has no name", airline.code);
        }
    }

    #[test]
    fn city_names_are_unique() {
        let mut seen = HashSet::new();
        for city in cities() {
            assert!(seen.insert((city.name, city.country)), "duplicate city {}", city.name);
        }
    }

    #[test]
    fn countries_are_two_uppercase_letters() {
        let countries = airports()
            .iter()
            .map(|a| a.country)
            .chain(cities().iter().map(|c| c.country));
        for country in countries {
            assert!(
                country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()),
                "bad country code {country:?}"
            );
        }
    }

    #[test]
    fn every_time_zone_resolves() {
        for airport in airports() {
            assert!(
                time_zone(airport.time_zone).is_some(),
                "{}: unknown time zone {}",
                airport.code,
                airport.time_zone
            );
        }
        for city in cities() {
            assert!(
                time_zone(city.time_zone).is_some(),
                "{}: unknown time zone {}",
                city.name,
                city.time_zone
            );
        }
    }

    #[test]
    fn an_unknown_time_zone_is_none() {
        assert!(time_zone("Mars/Olympus_Mons").is_none());
        assert_eq!(time_zone("Asia/Kolkata").map(|tz| tz.name()), Some("Asia/Kolkata"));
    }

    #[test]
    fn coordinates_are_in_range() {
        for airport in airports() {
            assert_coordinates(airport.code, airport.latitude, airport.longitude);
        }
        for city in cities() {
            assert_coordinates(city.name, city.latitude, city.longitude);
        }
    }

    /// Catches a dropped minus sign on a longitude or a time zone from the wrong continent: local clock time
    /// stays within a few hours of solar time everywhere we list.
    #[test]
    fn airport_longitude_agrees_with_its_utc_offset() {
        let instant = datetime!(2025-01-15 12:00 UTC);
        for airport in airports() {
            let Some(tz) = time_zone(airport.time_zone) else {
                continue;
            };
            let offset_hours = f64::from(tz.get_offset_utc(&instant).to_utc().whole_minutes()) / 60.0;
            let solar_hours = airport.longitude / 15.0;
            assert!(
                (offset_hours - solar_hours).abs() < 2.5,
                "{}: UTC offset {offset_hours} h is far from solar time {solar_hours:.1} h",
                airport.code
            );
        }
    }

    #[test]
    fn every_city_airport_exists_and_serves_that_city() {
        for city in cities() {
            for &code in &city.airports {
                let airport = airport(code).unwrap_or_else(|| panic!("{}: unknown airport {code}", city.name));
                assert_eq!(airport.city, city.name, "{code}");
                assert_eq!(airport.country, city.country, "{code}");
                assert_eq!(airport.time_zone, city.time_zone, "{code}");
                let km = distance_km(city.latitude, city.longitude, airport.latitude, airport.longitude);
                assert!(km < 80.0, "{code} is {km:.0} km from {}", city.name);
            }
        }
    }

    #[test]
    fn every_airline_home_exists() {
        for airline in airlines() {
            assert!(
                airport(airline.home).is_some(),
                "{}: unknown home airport {}",
                airline.code,
                airline.home
            );
        }
    }

    #[test]
    fn airport_lookup_is_by_exact_uppercase_code() {
        assert_eq!(airport("LHR").map(|a| a.city), Some("London"));
        assert!(airport("lhr").is_none());
        assert!(airport("XXX").is_none());
    }

    #[test]
    fn distance_lhr_to_jfk_is_about_5540_km() {
        let (lhr, jfk) = (airport("LHR").unwrap(), airport("JFK").unwrap());
        let km = distance_km(lhr.latitude, lhr.longitude, jfk.latitude, jfk.longitude);
        assert!((km - 5540.0).abs() < 55.4, "LHR-JFK is {km} km");
        assert_eq!(
            km,
            distance_km(jfk.latitude, jfk.longitude, lhr.latitude, lhr.longitude)
        );
    }

    #[test]
    fn distance_to_the_same_point_is_zero_and_to_the_antipode_is_half_the_circumference() {
        assert_eq!(distance_km(51.47, -0.45, 51.47, -0.45), 0.0);
        let half_km = std::f64::consts::PI * EARTH_RADIUS_KM;
        assert!((distance_km(0.0, 0.0, 0.0, 180.0) - half_km).abs() < 1e-6);
    }

    #[test]
    fn search_by_city_prefix_finds_london_airports_first() {
        let found = codes(&search_airports("lon", 10));
        let first = &found[..4];
        assert!(first.contains(&"LHR") && first.contains(&"LGW"), "{found:?}");
    }

    #[test]
    fn search_by_exact_code_puts_that_airport_first() {
        assert_eq!(codes(&search_airports("JFK", 5)).first(), Some(&"JFK"));
        assert_eq!(codes(&search_airports("jfk", 5)).first(), Some(&"JFK"));
    }

    #[test]
    fn search_ranks_code_prefix_before_name_matches() {
        // `MU` prefixes Munich's code, and the name matches of "Mumbai" and "Murtala Muhammed" come after it.
        let found = codes(&search_airports("mu", 10));
        assert_eq!(found.first(), Some(&"MUC"), "{found:?}");
        assert!(found.contains(&"BOM") && found.contains(&"LOS"), "{found:?}");
    }

    #[test]
    fn search_finds_a_substring_of_the_name() {
        assert_eq!(codes(&search_airports("heathrow", 5)), ["LHR"]);
    }

    #[test]
    fn search_returns_at_most_limit() {
        assert_eq!(search_airports("a", 3).len(), 3);
        assert!(search_airports("a", 0).is_empty());
    }

    #[test]
    fn blank_search_returns_nothing() {
        assert!(search_airports("", 10).is_empty());
        assert!(search_airports("   ", 10).is_empty());
        assert!(search_airports("zzzz", 10).is_empty());
    }
}
