//! One SVG chart per scenario from its [`Timeline`]: queue depth and running agents on the left
//! axis, gateway requests per second on the right, time in seconds along the bottom, and a
//! dashed marker per event (agent killed, outage started, ...).
//!
//! Hand-written SVG: three polylines, two axes with "nice" ticks (1, 2, 5 x 10^k), a legend.
//! Every text goes through [`escape`](crate::report::junit::escape), so event details from
//! container logs cannot break the document.

use std::fmt::Write as _;

use crate::report::junit::escape;

use super::{Sample, Timeline};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 80.0;
const TOP: f64 = 90.0;
const BOTTOM: f64 = 60.0;
/// Rows of event labels at the top of the plot, and the width of one label character.
const LABEL_ROWS: usize = 5;
const LABEL_CHAR_WIDTH: f64 = 5.6;

/// A plotted series: its legend label, colour, axis and how to read it from a sample.
struct Series {
    id: &'static str,
    label: &'static str,
    colour: &'static str,
    right_axis: bool,
    value: fn(&Sample) -> f64,
}

const SERIES: [Series; 3] = [
    Series {
        id: "queue-depth",
        label: "queue depth (ready)",
        colour: "#1f77b4",
        right_axis: false,
        value: |s| f64::from(s.queue_ready),
    },
    Series {
        id: "agents-running",
        label: "agents running",
        colour: "#2ca02c",
        right_axis: false,
        value: |s| f64::from(s.agents_running),
    },
    Series {
        id: "gateway-rps",
        label: "gateway requests/s (right axis)",
        colour: "#d62728",
        right_axis: true,
        value: |s| s.gateway_rps,
    },
];

/// The chart of `timeline`, titled `title`, as a standalone SVG document.
pub fn render(title: &str, timeline: &Timeline) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let end_ms = timeline
        .samples
        .iter()
        .map(|s| s.t_ms)
        .chain(timeline.events.iter().map(|e| e.t_ms))
        .max()
        .unwrap_or(0);
    let x_axis = Axis::new(end_ms as f64 / 1000.0);
    let left_max = timeline
        .samples
        .iter()
        .flat_map(|s| [f64::from(s.queue_ready), f64::from(s.agents_running)])
        .fold(0.0, f64::max);
    // Queue depth and agents are counts: no fractional ticks.
    let left_axis = Axis::counts(left_max);
    let right_axis = Axis::new(
        timeline
            .samples
            .iter()
            .map(|s| s.gateway_rps)
            .fold(0.0, f64::max),
    );
    let x = |secs: f64| LEFT + secs / x_axis.max * plot_w;
    let y = |value: f64, axis: &Axis| TOP + plot_h - value / axis.max * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );

    // Legend.
    for (i, series) in SERIES.iter().enumerate() {
        let lx = LEFT + i as f64 * 250.0;
        let _ = writeln!(
            svg,
            r#"<g class="legend"><line x1="{lx}" y1="46" x2="{}" y2="46" stroke="{}" stroke-width="3"/><text x="{}" y="50">{}</text></g>"#,
            lx + 24.0,
            series.colour,
            lx + 30.0,
            escape(series.label)
        );
    }

    // Grid and axes.
    let _ = writeln!(svg, r##"<g class="axes" stroke="#333333" fill="none">"##);
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>"#
    );
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(svg, r##"<g class="x-axis" text-anchor="middle">"##);
    for tick in x_axis.ticks() {
        let tx = x(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{}" stroke="#333333"/><line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{}" stroke="#e5e5e5"/><text x="{tx:.1}" y="{}">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h,
            TOP + plot_h + 20.0,
            label(tick)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}">time since the scenario started (s)</text></g>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 15.0
    );
    axis_labels(&mut svg, &left_axis, false, "queue depth / agents", |v| {
        y(v, &left_axis)
    });
    axis_labels(&mut svg, &right_axis, true, "requests/s", |v| {
        y(v, &right_axis)
    });

    // Event markers, under the series. Labels go into the first of a few rows where they do
    // not overlap the previous label; an event with no room keeps its marker and its tooltip.
    let _ = writeln!(svg, r#"<g class="events" font-size="10">"#);
    let mut row_ends = [f64::NEG_INFINITY; LABEL_ROWS];
    for event in &timeline.events {
        let ex = x(event.t_ms as f64 / 1000.0);
        let kind = escape(&event.kind);
        let width = event.kind.chars().count() as f64 * LABEL_CHAR_WIDTH;
        let label = row_ends.iter().position(|end| ex + 3.0 > *end).map(|row| {
            row_ends[row] = ex + 3.0 + width + 4.0;
            let ly = TOP + 12.0 + row as f64 * 12.0;
            format!(
                r##"<text x="{:.1}" y="{ly:.1}" fill="#555555">{kind}</text>"##,
                ex + 3.0
            )
        });
        let _ = writeln!(
            svg,
            r##"<g class="event"><title>{t:.1} s: {kind}: {detail}</title><line x1="{ex:.1}" y1="{TOP}" x2="{ex:.1}" y2="{}" stroke="#888888" stroke-dasharray="4 3"/>{}</g>"##,
            TOP + plot_h,
            label.unwrap_or_default(),
            t = event.t_ms as f64 / 1000.0,
            detail = escape(&event.detail),
        );
    }
    let _ = writeln!(svg, "</g>");

    // Series.
    for series in &SERIES {
        let axis = if series.right_axis {
            &right_axis
        } else {
            &left_axis
        };
        let points: Vec<String> = timeline
            .samples
            .iter()
            .map(|s| {
                format!(
                    "{:.1},{:.1}",
                    x(s.t_ms as f64 / 1000.0),
                    y((series.value)(s), axis)
                )
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline id="{}" class="series" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round" points="{}"/>"#,
            series.id,
            series.colour,
            points.join(" ")
        );
    }
    if timeline.samples.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#888888">no samples were recorded</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Ticks and labels of a vertical axis (left or right of the plot).
fn axis_labels(svg: &mut String, axis: &Axis, right: bool, title: &str, y: impl Fn(f64) -> f64) {
    let (edge, tick_to, text_x, anchor) = if right {
        (
            WIDTH - RIGHT,
            WIDTH - RIGHT + 5.0,
            WIDTH - RIGHT + 8.0,
            "start",
        )
    } else {
        (LEFT, LEFT - 5.0, LEFT - 8.0, "end")
    };
    let _ = writeln!(
        svg,
        r#"<g class="{}-axis" text-anchor="{anchor}">"#,
        if right { "right" } else { "left" }
    );
    for tick in axis.ticks() {
        let ty = y(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{edge}" y1="{ty:.1}" x2="{tick_to}" y2="{ty:.1}" stroke="#333333"/><text x="{text_x}" y="{:.1}">{}</text>"##,
            ty + 4.0,
            label(tick)
        );
        if !right {
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{}" y2="{ty:.1}" stroke="#eeeeee"/>"##,
                WIDTH - RIGHT
            );
        }
    }
    let (tx, rotate) = if right {
        (WIDTH - 18.0, 90)
    } else {
        (18.0, -90)
    };
    let ty = TOP + (HEIGHT - TOP - BOTTOM) / 2.0;
    let _ = writeln!(
        svg,
        r#"<text x="{tx}" y="{ty}" text-anchor="middle" transform="rotate({rotate} {tx} {ty})">{}</text></g>"#,
        escape(title)
    );
}

/// An axis from 0 to a "nice" maximum with a 1/2/5 x 10^k step.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    max: f64,
    step: f64,
}

impl Axis {
    /// About five ticks covering `0..=data_max`; an all-zero series still gets `0..=1`.
    fn new(data_max: f64) -> Axis {
        let data_max = if data_max.is_finite() && data_max > 0.0 {
            data_max
        } else {
            1.0
        };
        let raw = data_max / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        Axis {
            max: (data_max / step).ceil() * step,
            step,
        }
    }

    /// Like [`Axis::new`] with a step of at least 1.
    fn counts(data_max: f64) -> Axis {
        let axis = Axis::new(data_max.max(1.0));
        if axis.step >= 1.0 {
            axis
        } else {
            Axis {
                max: axis.max.ceil(),
                step: 1.0,
            }
        }
    }

    fn ticks(&self) -> Vec<f64> {
        let n = (self.max / self.step).round() as usize;
        (0..=n).map(|i| i as f64 * self.step).collect()
    }
}

/// A tick label without float noise: `0.2`, `5`, `1500`.
fn label(value: f64) -> String {
    let rounded = (value * 1000.0).round() / 1000.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::xml_check::{assert_well_formed, element_names};
    use crate::timeline::TimelineEvent;

    fn timeline() -> Timeline {
        let samples = (0..=40)
            .map(|i| Sample {
                t_ms: i * 500,
                queue_ready: 40u32.saturating_sub(i as u32 * 2),
                queue_unacked: 4,
                agents_running: (i as u32).min(8),
                gateway_rps: if (10..20).contains(&i) { 0.4 } else { 12.5 },
            })
            .collect();
        Timeline {
            samples,
            events: vec![
                TimelineEvent {
                    t_ms: 5_000,
                    kind: "outage-start".into(),
                    detail: "503 for 5 s <all> & \"every\" agent".into(),
                },
                TimelineEvent {
                    t_ms: 10_000,
                    kind: "outage-end".into(),
                    detail: String::new(),
                },
            ],
        }
    }

    #[test]
    fn renders_well_formed_svg_with_the_three_series_axes_and_events() {
        let svg = render("retry-storm <docker>", &timeline());
        assert_well_formed(&svg);
        let names = element_names(&svg).unwrap();
        assert_eq!(names[0], "svg");
        assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 3);
        for id in ["queue-depth", "agents-running", "gateway-rps"] {
            let start = svg
                .find(&format!(r#"id="{id}""#))
                .unwrap_or_else(|| panic!("{id} missing"));
            let points = &svg[start..];
            let points = &points[points.find("points=\"").unwrap() + 8..];
            let points = &points[..points.find('"').unwrap()];
            assert_eq!(points.split(' ').count(), 41, "{id}: one point per sample");
        }
        assert!(svg.contains("retry-storm &lt;docker&gt;"), "title escaped");
        assert!(
            svg.contains("&lt;all&gt; &amp; &quot;every&quot;"),
            "event detail escaped"
        );
        assert_eq!(svg.matches(r#"class="event""#).count(), 2);
        // x axis to 20 s in steps of 5, left axis to 40, right axis to 15 in steps of 5.
        for tick in [">0<", ">5<", ">20<", ">40<", ">15<"] {
            assert!(svg.contains(tick), "tick label {tick} missing");
        }
        assert!(svg.contains("time since the scenario started (s)"));
    }

    #[test]
    fn crowded_event_labels_use_rows_and_never_overlap() {
        let mut t = timeline();
        t.events = (0..12)
            .map(|i| TimelineEvent {
                t_ms: 8_000 + i * 50,
                kind: "agent-replaced".into(),
                detail: format!("agent-{i}"),
            })
            .collect();
        let svg = render("eviction-resume", &t);
        assert_well_formed(&svg);
        assert_eq!(
            svg.matches(r#"class="event""#).count(),
            12,
            "a marker per event"
        );
        let labels = svg
            .matches(r##"fill="#555555">agent-replaced</text>"##)
            .count();
        assert_eq!(
            labels, LABEL_ROWS,
            "one label per row, the rest only as tooltips"
        );
    }

    #[test]
    fn empty_timeline_still_renders_axes() {
        let svg = render("oom", &Timeline::default());
        assert_well_formed(&svg);
        assert!(svg.contains("no samples were recorded"));
        assert_eq!(svg.matches("<polyline").count(), 3);
    }

    #[test]
    fn nice_axes() {
        assert_eq!(
            Axis::new(40.0),
            Axis {
                max: 40.0,
                step: 10.0
            }
        );
        assert_eq!(
            Axis::new(12.5),
            Axis {
                max: 15.0,
                step: 5.0
            }
        );
        assert_eq!(
            Axis::new(0.0),
            Axis {
                max: 1.0,
                step: 0.2
            }
        );
        assert_eq!(
            Axis::new(f64::NAN),
            Axis {
                max: 1.0,
                step: 0.2
            }
        );
        assert_eq!(Axis::new(20.0).ticks(), vec![0.0, 5.0, 10.0, 15.0, 20.0]);
        assert_eq!(
            Axis::counts(0.0),
            Axis {
                max: 1.0,
                step: 1.0
            }
        );
        assert_eq!(
            Axis::counts(3.0),
            Axis {
                max: 3.0,
                step: 1.0
            }
        );
        assert_eq!(
            Axis::counts(40.0),
            Axis {
                max: 40.0,
                step: 10.0
            }
        );
        assert_eq!(label(0.6000000000000001), "0.6");
        assert_eq!(label(15.0), "15");
    }
}
