//! The unit an assignment is made for (a user, a session, a device).

/// Longest unit id accepted, in bytes. Units are store keys; this bounds a key's size.
pub const MAX_UNIT_BYTES: usize = 256;

/// A non-empty unit id of at most [`MAX_UNIT_BYTES`] bytes without control characters. Every
/// door a unit comes in by (assign's body and query, an event) builds it with [`Unit::parse`],
/// so the rule is written once; deserializing parses too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Unit(String);

/// The rule of [`check`] as a JSON Schema, for the OpenAPI document.
impl utoipa::PartialSchema for Unit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(format!(
                "A user, session or device id: 1 to {MAX_UNIT_BYTES} bytes of UTF-8 without \
                 control characters (`maxLength` counts characters, so a long non-ASCII id can \
                 pass it and still be refused)."
            )))
            .min_length(Some(1))
            .max_length(Some(MAX_UNIT_BYTES))
            .pattern(Some(r"^[^\u0000-\u001f\u007f-\u009f]*$"))
            .examples(["user-42"])
            .into()
    }
}

impl utoipa::ToSchema for Unit {}

/// Why a unit id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("unit must not be empty")]
    Empty,
    #[error("unit is {0} bytes long; at most {MAX_UNIT_BYTES} are allowed")]
    TooLong(usize),
    #[error("unit contains a control character at byte {0}")]
    ControlChar(usize),
}

impl Unit {
    pub fn parse(s: &str) -> Result<Self, UnitError> {
        check(s)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The rule alone, for a unit read as text borrowed from a request (an event's, which
    /// copies it once into its op): no `Unit` is built.
    pub fn check(s: &str) -> Result<(), UnitError> {
        check(s)
    }

    /// The checked text itself: an event's unit becomes its reward target without a copy.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for Unit {
    type Error = UnitError;

    fn try_from(text: String) -> Result<Self, UnitError> {
        check(&text)?;
        Ok(Self(text))
    }
}

/// The one rule for unit ids.
fn check(s: &str) -> Result<(), UnitError> {
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    if s.len() > MAX_UNIT_BYTES {
        return Err(UnitError::TooLong(s.len()));
    }
    // Printable ASCII holds no control character (most units: `u-42`, an email), and a
    // byte's range is cheaper to test than a char's class: ~150 of the HTTP worker's
    // instructions per bulk event went to the char by char search
    // (`benches/load/results/sbulk17-2026-12-01-s17.md`).
    if s.bytes().all(|byte| (0x20..0x7f).contains(&byte)) {
        return Ok(());
    }
    if let Some((at, _)) = s.char_indices().find(|(_, c)| c.is_control()) {
        return Err(UnitError::ControlChar(at));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_ids_are_units() {
        for ok in [
            "u1",
            "user@example.com",
            "séance-42",
            &"x".repeat(MAX_UNIT_BYTES),
        ] {
            assert_eq!(
                Unit::parse(ok).map(|u| u.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn a_unit_is_refused_exactly_for_a_control_character() {
        for code in 0..0x3000u32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let unit = format!("a{c}b");
            let expected = if c.is_control() {
                Err(UnitError::ControlChar(1))
            } else {
                Ok(())
            };
            assert_eq!(Unit::check(&unit), expected, "U+{code:04X}");
        }
    }

    #[test]
    fn empty_long_and_control_units_are_rejected() {
        assert_eq!(Unit::parse(""), Err(UnitError::Empty));
        assert_eq!(
            Unit::parse(&"x".repeat(MAX_UNIT_BYTES + 1)),
            Err(UnitError::TooLong(MAX_UNIT_BYTES + 1))
        );
        assert_eq!(Unit::parse("ab\ncd"), Err(UnitError::ControlChar(2)));
    }

    #[test]
    fn a_deserialized_unit_is_parsed_and_its_error_does_not_quote_it() {
        let unit: Unit = serde_json::from_str("\"u1\"").unwrap();
        assert_eq!(unit.as_str(), "u1");
        let error = serde_json::from_str::<Unit>("\"ab\\u0000<script>\"").unwrap_err();
        assert!(
            error.to_string().contains("control character at byte 2"),
            "{error}"
        );
        assert!(!error.to_string().contains("script"), "{error}");
        assert!(serde_json::from_str::<Unit>("\"\"").is_err());
    }
}
