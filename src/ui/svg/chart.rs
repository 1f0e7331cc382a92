//! Line charts as SVG: axes with ticks and titles, one series per arm, a legend, and a style
//! per series that does not rest on colour alone (colour, dash pattern and marker shape all
//! change from one series to the next).

use std::fmt::Write as _;

use maud::{Markup, html};

use super::axis::{Scale, Ticks, nice_ticks, time_ticks, unit_ticks};

/// The Okabe–Ito palette (M. Okabe and K. Ito, "Color Universal Design", 2002), ordered so
/// that the first colours keep the most contrast on white; distinguishable under the common
/// forms of colour-vision deficiency.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// Dash patterns (SVG `stroke-dasharray`), cycled with a period prime to the palette's.
pub const DASHES: [&str; 5] = ["", "8 4", "2 3", "10 3 2 3", "5 2 5 6"];

/// Marker shapes, cycled like the dashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
    Cross,
}

pub const MARKERS: [Marker; 6] = [
    Marker::Circle,
    Marker::Square,
    Marker::TriangleUp,
    Marker::Diamond,
    Marker::TriangleDown,
    Marker::Cross,
];

/// How series `index` is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesStyle {
    pub colour: &'static str,
    pub dash: &'static str,
    pub marker: Marker,
}

pub fn style(index: usize) -> SeriesStyle {
    SeriesStyle {
        colour: PALETTE[index % PALETTE.len()],
        dash: DASHES[index % DASHES.len()],
        marker: MARKERS[index % MARKERS.len()],
    }
}

/// Width of every chart in SVG units; the page scales it to the column it sits in.
pub const WIDTH: f64 = 480.0;
const PLOT_HEIGHT: f64 = 220.0;
const LEFT: f64 = 62.0;
/// Room for the last x tick's label, centred on the plot's right edge.
const RIGHT: f64 = 30.0;
const TOP: f64 = 34.0;
/// Tick labels and the x-axis title under the plot.
const UNDER_PLOT: f64 = 52.0;
const LEGEND_ROW: f64 = 22.0;
const LEGEND_COLUMNS: usize = 2;
const MARKER_RADIUS: f64 = 4.0;
/// Markers per series at most, spread along it; every point gets one when there are fewer.
const MAX_MARKERS: usize = 8;
/// Longest legend label shown in full.
const MAX_LABEL_CHARS: usize = 24;

/// What the x axis shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XAxis {
    /// Numbers over this range (ticks may widen it to nice values).
    Linear { lo: f64, hi: f64 },
    /// Unix milliseconds, labelled in UTC; the range is the data's.
    Time,
}

/// What the y axis shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum YAxis {
    /// A proportion: always 0 to 1.
    Unit,
    /// From 0 to a nice value above the largest point.
    FromZero,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The arm's variant id: the legend label and the group's `data-variant`.
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart, one series per arm.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Unique on the page: prefixes the ids of the title, description and clip path.
    pub id: String,
    pub title: String,
    /// What the chart shows, for screen readers (the SVG's `<desc>`).
    pub description: String,
    pub x_label: String,
    pub y_label: String,
    pub x: XAxis,
    pub y: YAxis,
    pub series: Vec<Series>,
    /// Shown in the plot area when no series has a point.
    pub empty_note: String,
}

impl LineChart {
    /// The chart's total height: the plot, its axis labels and the legend rows.
    pub fn height(&self) -> f64 {
        let rows = self.series.len().div_ceil(LEGEND_COLUMNS).max(1);
        TOP + PLOT_HEIGHT + UNDER_PLOT + rows as f64 * LEGEND_ROW + 6.0
    }

    fn x_ticks(&self) -> Ticks {
        match self.x {
            XAxis::Linear { lo, hi } => nice_ticks(lo, hi, 6),
            XAxis::Time => {
                let times = self
                    .series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| p.0));
                let lo = times.clone().fold(f64::INFINITY, f64::min);
                let hi = times.fold(f64::NEG_INFINITY, f64::max);
                if !(lo.is_finite() && hi.is_finite()) {
                    // No data: an axis without labels (there is no time to label).
                    return Ticks {
                        values: Vec::new(),
                        labels: Vec::new(),
                        lo: 0.0,
                        hi: 1.0,
                    };
                }
                // One point: a minute either side, so that it sits mid-axis.
                let (lo, hi) = if hi - lo < 1.0 {
                    (lo - 60_000.0, hi + 60_000.0)
                } else {
                    (lo, hi)
                };
                // Four at most: `HH:MM:SS` labels must not touch at a phone's width.
                time_ticks(lo.max(0.0) as u64, hi.max(0.0) as u64, 4)
            }
        }
    }

    fn y_ticks(&self) -> Ticks {
        match self.y {
            YAxis::Unit => unit_ticks(),
            YAxis::FromZero => {
                let top = self
                    .series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| p.1))
                    .filter(|y| y.is_finite())
                    .fold(0.0, f64::max);
                nice_ticks(0.0, if top > 0.0 { top } else { 1.0 }, 5)
            }
        }
    }

    /// The chart as an `<svg>` element.
    pub fn render(&self) -> Markup {
        let height = self.height();
        let right = WIDTH - RIGHT;
        let bottom = TOP + PLOT_HEIGHT;
        let x_ticks = self.x_ticks();
        let y_ticks = self.y_ticks();
        let x = Scale::new((x_ticks.lo, x_ticks.hi), (LEFT, right));
        let y = Scale::new((y_ticks.lo, y_ticks.hi), (bottom, TOP));
        let title_id = format!("{}-title", self.id);
        let desc_id = format!("{}-desc", self.id);
        let clip_id = format!("{}-clip", self.id);
        let empty = self.series.iter().all(|s| s.points.is_empty());
        html! {
            svg class="chart" id=(self.id) xmlns="http://www.w3.org/2000/svg"
                viewBox=(format!("0 0 {WIDTH} {height:.0}")) role="img"
                aria-labelledby=(format!("{title_id} {desc_id}")) {
                title id=(title_id) { (self.title) }
                desc id=(desc_id) { (self.description) }
                defs {
                    clipPath id=(clip_id) {
                        rect x=(fmt(LEFT)) y=(fmt(TOP)) width=(fmt(right - LEFT))
                            height=(fmt(PLOT_HEIGHT)) {}
                    }
                }
                text class="chart-title" x=(fmt(WIDTH / 2.0)) y="20" text-anchor="middle" {
                    (self.title)
                }
                g class="grid" {
                    @for (value, label) in y_ticks.values.iter().zip(&y_ticks.labels) {
                        line x1=(fmt(LEFT)) x2=(fmt(right)) y1=(fmt(y.map(*value)))
                            y2=(fmt(y.map(*value))) {}
                        text class="tick" x=(fmt(LEFT - 6.0)) y=(fmt(y.map(*value) + 4.0))
                            text-anchor="end" { (label) }
                    }
                    @for (value, label) in x_ticks.values.iter().zip(&x_ticks.labels) {
                        line x1=(fmt(x.map(*value))) x2=(fmt(x.map(*value))) y1=(fmt(TOP))
                            y2=(fmt(bottom)) {}
                        text class="tick" x=(fmt(x.map(*value))) y=(fmt(bottom + 18.0))
                            text-anchor="middle" { (label) }
                    }
                }
                g class="axes" {
                    line x1=(fmt(LEFT)) x2=(fmt(LEFT)) y1=(fmt(TOP)) y2=(fmt(bottom)) {}
                    line x1=(fmt(LEFT)) x2=(fmt(right)) y1=(fmt(bottom)) y2=(fmt(bottom)) {}
                }
                text class="axis-title" x=(fmt((LEFT + right) / 2.0)) y=(fmt(bottom + 40.0))
                    text-anchor="middle" { (self.x_label) }
                text class="axis-title" x="0" y="0" text-anchor="middle"
                    transform=(format!("translate(15 {}) rotate(-90)", fmt((TOP + bottom) / 2.0))) {
                    (self.y_label)
                }
                @if empty {
                    text class="empty-note" x=(fmt((LEFT + right) / 2.0))
                        y=(fmt((TOP + bottom) / 2.0)) text-anchor="middle" { (self.empty_note) }
                }
                g class="plot" clip-path=(format!("url(#{clip_id})")) {
                    @for (k, series) in self.series.iter().enumerate() {
                        (series_group(k, series, &x, &y))
                    }
                }
                (legend(&self.series, bottom + UNDER_PLOT))
            }
        }
    }
}

/// SVG coordinates to a tenth of a unit: plenty at any size the page shows.
fn fmt(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

/// The `d` of a polyline through `points`.
fn line_path(points: impl IntoIterator<Item = (f64, f64)>) -> String {
    let mut d = String::new();
    for (i, (px, py)) in points.into_iter().enumerate() {
        let _ = write!(
            d,
            "{}{},{}",
            if i == 0 { "M" } else { "L" },
            fmt(px),
            fmt(py)
        );
    }
    d
}

/// The `d` of `marker` centred on (cx, cy).
fn marker_path(marker: Marker, cx: f64, cy: f64) -> String {
    let r = MARKER_RADIUS;
    let corners: Vec<(f64, f64)> = match marker {
        Marker::Circle => {
            return format!(
                "M{},{}a{r},{r} 0 1,0 {},0a{r},{r} 0 1,0 {},0Z",
                fmt(cx - r),
                fmt(cy),
                fmt(2.0 * r),
                fmt(-2.0 * r)
            );
        }
        Marker::Square => vec![(-r, -r), (r, -r), (r, r), (-r, r)],
        Marker::TriangleUp => vec![(0.0, -1.2 * r), (1.1 * r, 0.9 * r), (-1.1 * r, 0.9 * r)],
        Marker::TriangleDown => vec![(0.0, 1.2 * r), (1.1 * r, -0.9 * r), (-1.1 * r, -0.9 * r)],
        Marker::Diamond => vec![
            (0.0, -1.3 * r),
            (1.3 * r, 0.0),
            (0.0, 1.3 * r),
            (-1.3 * r, 0.0),
        ],
        Marker::Cross => {
            let (a, b) = (r * 0.4, r * 1.2);
            vec![
                (-a, -b),
                (a, -b),
                (a, -a),
                (b, -a),
                (b, a),
                (a, a),
                (a, b),
                (-a, b),
                (-a, a),
                (-b, a),
                (-b, -a),
                (-a, -a),
            ]
        }
    };
    let mut d = line_path(corners.into_iter().map(|(dx, dy)| (cx + dx, cy + dy)));
    d.push('Z');
    d
}

/// Indices of the points that get a marker: all of them when few, else [`MAX_MARKERS`]
/// spread evenly, shifted per series so that markers of overlapping lines do not coincide.
fn marker_indices(len: usize, series: usize) -> Vec<usize> {
    if len <= MAX_MARKERS {
        return (0..len).collect();
    }
    let step = len as f64 / MAX_MARKERS as f64;
    let shift = (series % 3) as f64 * step / 3.0;
    (0..MAX_MARKERS)
        .map(|i| ((i as f64 * step + shift) as usize).min(len - 1))
        .collect()
}

fn series_group(k: usize, series: &Series, x: &Scale, y: &Scale) -> Markup {
    let style = style(k);
    let points: Vec<(f64, f64)> = series
        .points
        .iter()
        .filter(|(_, py)| py.is_finite())
        .map(|(px, py)| (x.map(*px), y.map(*py)))
        .collect();
    html! {
        g class="series" data-variant=(series.label) {
            path class="line" d=(line_path(points.iter().copied())) fill="none"
                stroke=(style.colour) stroke-width="2.2" stroke-linejoin="round"
                stroke-dasharray=[(!style.dash.is_empty()).then_some(style.dash)] {}
            @for i in marker_indices(points.len(), k) {
                path class="marker" d=(marker_path(style.marker, points[i].0, points[i].1))
                    fill=(style.colour) stroke="#ffffff" stroke-width="1" {}
            }
        }
    }
}

fn legend(series: &[Series], top: f64) -> Markup {
    let column = (WIDTH - LEFT - RIGHT) / LEGEND_COLUMNS as f64;
    html! {
        g class="legend" {
            @for (k, s) in series.iter().enumerate() {
                @let style = style(k);
                @let lx = LEFT + (k % LEGEND_COLUMNS) as f64 * column;
                @let ly = top + (k / LEGEND_COLUMNS) as f64 * LEGEND_ROW + 8.0;
                @let label = shorten(&s.label);
                g class="legend-item" data-variant=(s.label) {
                    path d=(line_path([(lx, ly), (lx + 34.0, ly)])) fill="none"
                        stroke=(style.colour) stroke-width="2.2"
                        stroke-dasharray=[(!style.dash.is_empty()).then_some(style.dash)] {}
                    path d=(marker_path(style.marker, lx + 17.0, ly)) fill=(style.colour)
                        stroke="#ffffff" stroke-width="1" {}
                    text class="legend-label" x=(fmt(lx + 42.0)) y=(fmt(ly + 4.5)) {
                        @if label != s.label { title { (s.label) } }
                        (label)
                    }
                }
            }
        }
    }
}

/// A legend label cut to [`MAX_LABEL_CHARS`] with an ellipsis (the full id is its tooltip).
fn shorten(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        return label.to_owned();
    }
    let mut cut: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> LineChart {
        LineChart {
            id: "c".into(),
            title: "P(best) over time".into(),
            description: "d".into(),
            x_label: "time (UTC)".into(),
            y_label: "P(best)".into(),
            x: XAxis::Linear { lo: 0.0, hi: 10.0 },
            y: YAxis::Unit,
            series,
            empty_note: "no history yet".into(),
        }
    }

    fn arm(label: &str, points: &[(f64, f64)]) -> Series {
        Series {
            label: label.into(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn every_series_gets_its_own_group_line_and_legend_entry() {
        let svg = chart(vec![
            arm("control", &[(0.0, 0.5), (10.0, 0.4)]),
            arm("bold", &[(0.0, 0.5), (10.0, 0.6)]),
            arm("<script>", &[(0.0, 0.1)]),
        ])
        .render()
        .into_string();
        assert_eq!(svg.matches("class=\"series\"").count(), 3);
        assert_eq!(svg.matches("class=\"legend-item\"").count(), 3);
        assert!(svg.contains("data-variant=\"control\""));
        // Labels are escaped, never markup.
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(svg.contains("<title id=\"c-title\">P(best) over time</title>"));
        assert!(svg.contains("time (UTC)"));
    }

    #[test]
    fn points_land_where_the_scales_put_them() {
        // x 0..10 onto 62..450, y 0..1 onto 254..34: (10, 0.5) is (450, 144).
        let svg = chart(vec![arm("a", &[(0.0, 0.0), (10.0, 0.5)])])
            .render()
            .into_string();
        assert!(svg.contains("d=\"M62,254L450,144\""), "{svg}");
    }

    #[test]
    fn neighbouring_series_differ_in_colour_dash_and_marker() {
        for k in 0..12 {
            let (a, b) = (style(k), style(k + 1));
            assert!(a.colour != b.colour && a.dash != b.dash && a.marker != b.marker);
        }
        // Forty series before a style repeats exactly (8 colours × 5 dashes).
        let styles: std::collections::HashSet<_> =
            (0..40).map(|k| (style(k).colour, style(k).dash)).collect();
        assert_eq!(styles.len(), 40);
    }

    #[test]
    fn an_empty_chart_says_why_and_keeps_its_axes() {
        let svg = chart(vec![arm("a", &[]), arm("b", &[])])
            .render()
            .into_string();
        assert!(svg.contains("no history yet"));
        assert!(svg.contains("class=\"tick\""));
        // An empty time axis has no labels: there is no time to show.
        let timeline = LineChart {
            x: XAxis::Time,
            ..chart(vec![arm("a", &[])])
        };
        let ticks = timeline.x_ticks();
        assert!(ticks.values.is_empty() && ticks.labels.is_empty());
    }

    #[test]
    fn long_series_get_a_bounded_number_of_markers_and_short_ones_one_per_point() {
        assert_eq!(marker_indices(3, 0), vec![0, 1, 2]);
        let many = marker_indices(1440, 1);
        assert_eq!(many.len(), MAX_MARKERS);
        assert!(many.iter().all(|i| *i < 1440));
        assert_ne!(marker_indices(1440, 0), marker_indices(1440, 1));
    }

    #[test]
    fn long_labels_are_shortened_with_an_ellipsis() {
        assert_eq!(shorten("control"), "control");
        let long = "a-very-long-variant-identifier-indeed";
        assert_eq!(shorten(long).chars().count(), MAX_LABEL_CHARS);
        assert!(shorten(long).ends_with('…'));
    }
}
