//! [`SecretString`]: a configured key or secret that cannot reach a log by accident. Its `Debug`
//! prints `[redacted]` and it has no `Display`, so `{config:?}`, a `tracing` field or a panic
//! message shows that a value is set, never the value; code that needs the bytes calls
//! [`SecretString::expose`], which is easy to find in a review.
//!
//! A 20-line newtype rather than the `secrecy` crate: banditd keeps these values for the life
//! of the process (zeroizing on drop would buy little) and needs them `Clone` inside `Config`.

/// A secret text value (an API key, a token secret).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that compares or signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_neither_the_value_nor_its_length() {
        let secret = SecretString::from("correct horse battery staple");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert_eq!(shown, "[redacted] Some([redacted])");
        assert_eq!(secret.expose(), "correct horse battery staple");
    }
}
