//! Human durations as analysts write them: `45s`, `30m`, `12h`, `7d`, `2w`.

/// A positive duration written with one unit suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(std::time::Duration);

impl HumanDuration {
    pub fn from_std(d: std::time::Duration) -> Self {
        Self(d)
    }
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}
