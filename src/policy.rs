//! Allocation policy: which arm a request gets, and with what probability. Pure: the caller
//! hands in the arms' state and the RNG; the simulator and the server share this code.

/// What the policy needs to know about one arm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmView {
    /// Posterior alpha = prior alpha + R.
    pub alpha: f64,
    /// Posterior beta = prior beta + N − R.
    pub beta: f64,
    /// N (exposures), for burn-in.
    pub exposures: f64,
    /// Retired arms (removed from the YAML) get no new traffic.
    pub active: bool,
}

/// The experiment-level state that overrides adaptive allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serve arm `default`, do not count it.
    Paused { default: usize },
    /// Serve arm `winner` to everybody, counted.
    Fixed { winner: usize },
    /// Burn-in, floor and Thompson sampling.
    Adaptive,
}

/// Adaptive allocation knobs (from `policy:` in the YAML).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub burn_in: u64,
    pub min_share: f64,
}

/// Which rule chose the arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Paused,
    Fixed,
    BurnIn,
    Floor,
    Thompson,
}

/// The policy's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub arm: usize,
    /// P(this policy picks `arm` right now), in (0, 1].
    pub propensity: f64,
    /// Whether the assignment counts as an exposure (false when paused).
    pub counted: bool,
    pub reason: Reason,
}
