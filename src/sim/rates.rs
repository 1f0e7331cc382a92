//! The true conversion rates a simulation runs against, as written on the command line:
//! `control=0.05,bold=0.06` by variant id (order free, every variant required), or
//! `0.05,0.06` in variant order.

use super::error::SimError;

/// `--rates` as written, before it is matched against the arms.
#[derive(Debug, Clone, PartialEq)]
pub enum RateSpec {
    /// `id=rate` items.
    Named(Vec<(String, f64)>),
    /// Bare rates in arm order.
    Positional(Vec<f64>),
}

impl RateSpec {
    /// Parses a comma-separated list. Either every item is `id=rate` or none is; each rate
    /// is a finite number in [0, 1]; an id appears at most once.
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let items: Vec<&str> = text.split(',').map(str::trim).collect();
        if items.iter().all(|item| item.is_empty()) {
            return Err(SimError::EmptyRates);
        }
        let named = items.iter().filter(|item| item.contains('=')).count();
        if named != 0 && named != items.len() {
            return Err(SimError::MixedRates);
        }
        if named == 0 {
            return items
                .iter()
                .enumerate()
                .map(|(k, item)| parse_rate(item, &format!("arm {k}")))
                .collect::<Result<_, _>>()
                .map(RateSpec::Positional);
        }
        let mut pairs: Vec<(String, f64)> = Vec::with_capacity(items.len());
        for item in items {
            // `named == items.len()`, so every item holds an '='.
            let (id, rate) = item.split_once('=').unwrap_or((item, ""));
            let id = id.trim();
            if id.is_empty() {
                return Err(SimError::BadRate {
                    item: item.to_owned(),
                    reason: "the variant id before '=' is missing".to_owned(),
                });
            }
            if pairs.iter().any(|(seen, _)| seen == id) {
                return Err(SimError::DuplicateRate { id: id.to_owned() });
            }
            let rate = parse_rate(rate.trim(), &format!("variant {id:?}"))?;
            pairs.push((id.to_owned(), rate));
        }
        Ok(RateSpec::Named(pairs))
    }

    /// The rate of every arm, in the order of `ids`. Named rates must cover exactly the
    /// ids; positional rates must be as many as the ids.
    pub fn resolve(&self, ids: &[&str]) -> Result<Vec<f64>, SimError> {
        let known = || ids.join(", ");
        match self {
            RateSpec::Positional(rates) => {
                if rates.len() == ids.len() {
                    Ok(rates.clone())
                } else {
                    Err(SimError::WrongCount {
                        given: rates.len(),
                        expected: ids.len(),
                    })
                }
            }
            RateSpec::Named(pairs) => {
                if let Some((id, _)) = pairs.iter().find(|(id, _)| !ids.contains(&id.as_str())) {
                    return Err(SimError::UnknownVariant {
                        id: id.clone(),
                        known: known(),
                    });
                }
                let missing: Vec<&str> = ids
                    .iter()
                    .copied()
                    .filter(|id| !pairs.iter().any(|(named, _)| named == id))
                    .collect();
                if !missing.is_empty() {
                    return Err(SimError::MissingRates {
                        missing: missing.join(", "),
                        known: known(),
                    });
                }
                Ok(ids
                    .iter()
                    .map(|id| {
                        pairs
                            .iter()
                            .find(|(named, _)| named == id)
                            .map_or(0.0, |&(_, rate)| rate) // every id was found above
                    })
                    .collect())
            }
        }
    }
}

fn parse_rate(text: &str, what: &str) -> Result<f64, SimError> {
    let value: f64 = text.parse().map_err(|_| SimError::BadRate {
        item: text.to_owned(),
        reason: format!("{what} needs a number such as 0.05"),
    })?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(SimError::RateOutOfRange {
            what: what.to_owned(),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 3] = ["control", "bold", "question"];

    #[test]
    fn named_rates_are_matched_to_variants_in_any_order() {
        let spec = RateSpec::parse("bold=0.06, question=0.04,control=0.05").unwrap();
        assert_eq!(spec.resolve(&IDS).unwrap(), vec![0.05, 0.06, 0.04]);
    }

    #[test]
    fn positional_rates_follow_variant_order() {
        let spec = RateSpec::parse("0.5,0.4,0.4").unwrap();
        assert_eq!(spec.resolve(&IDS).unwrap(), vec![0.5, 0.4, 0.4]);
    }

    #[test]
    fn an_unknown_variant_is_named_in_the_error() {
        let spec = RateSpec::parse("control=0.05,bold=0.06,question=0.1,italic=0.2").unwrap();
        let error = spec.resolve(&IDS).unwrap_err();
        assert!(matches!(&error, SimError::UnknownVariant { id, .. } if id == "italic"));
        assert!(error.to_string().contains("control, bold, question"));
    }

    #[test]
    fn a_missing_variant_is_named_in_the_error() {
        let error = RateSpec::parse("control=0.05")
            .unwrap()
            .resolve(&IDS)
            .unwrap_err();
        assert_eq!(
            error,
            SimError::MissingRates {
                missing: "bold, question".to_owned(),
                known: "control, bold, question".to_owned()
            }
        );
    }

    #[test]
    fn rates_outside_the_unit_interval_are_rejected() {
        for text in ["control=1.5", "-0.1,0.2", "0.2,NaN", "inf,0.1"] {
            assert!(
                matches!(RateSpec::parse(text), Err(SimError::RateOutOfRange { .. })),
                "{text}"
            );
        }
        assert!(RateSpec::parse("0,1").is_ok());
    }

    #[test]
    fn the_wrong_number_of_positional_rates_is_rejected() {
        let error = RateSpec::parse("0.5,0.4")
            .unwrap()
            .resolve(&IDS)
            .unwrap_err();
        assert_eq!(
            error,
            SimError::WrongCount {
                given: 2,
                expected: 3
            }
        );
    }

    #[test]
    fn malformed_lists_are_rejected() {
        assert_eq!(RateSpec::parse(" "), Err(SimError::EmptyRates));
        assert_eq!(
            RateSpec::parse("control=0.1,0.2"),
            Err(SimError::MixedRates)
        );
        assert!(matches!(
            RateSpec::parse("0.1,,0.2"),
            Err(SimError::BadRate { .. })
        ));
        assert!(matches!(
            RateSpec::parse("=0.1,bold=0.2"),
            Err(SimError::BadRate { .. })
        ));
        assert!(matches!(
            RateSpec::parse("control=five"),
            Err(SimError::BadRate { .. })
        ));
        assert_eq!(
            RateSpec::parse("bold=0.1,bold=0.2"),
            Err(SimError::DuplicateRate {
                id: "bold".to_owned()
            })
        );
    }
}
