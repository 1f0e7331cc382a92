//! Plots drawn on the server as SVG: pure functions from numbers to markup, no I/O.
//! `axis` places ticks, `density` samples Beta posteriors, `chart` draws line charts.

pub mod axis;
pub mod chart;
pub mod density;

pub use chart::{LineChart, Series, XAxis, YAxis};
