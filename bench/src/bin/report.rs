//! Turns the raw results of `run.sh` (one JSON object per line) into a Markdown table
//! (medians over repetitions, each figure also as the median of its ratio to the floor
//! measured in the same repetition) and SVG plots of throughput and CPU per operation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Parser)]
struct Args {
    /// The raw results (JSON lines).
    #[arg(long)]
    input: PathBuf,
    /// Where to write `table.md` and the SVG plots.
    #[arg(long)]
    out_dir: PathBuf,
    /// The baseline server for ratios.
    #[arg(long, default_value = "floor")]
    floor: String,
    /// Order of the servers in the table (others follow).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "zocket-hyper,zocket-warp,base-zocket-hyper,base-zocket-warp,floor,socketio,jsonrpsee,axum"
    )]
    order: Vec<String>,
}

/// results[scenario][server][rep] = the JSON object.
type Results = BTreeMap<String, BTreeMap<String, BTreeMap<u64, Value>>>;

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn get(v: &Value, path: &str) -> Option<f64> {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur.get(key)?;
    }
    cur.as_f64()
}

struct Table<'a> {
    results: &'a Results,
    floor: &'a str,
}

impl Table<'_> {
    fn runs(&self, scenario: &str, server: &str) -> Option<&BTreeMap<u64, Value>> {
        self.results.get(scenario)?.get(server)
    }
    /// The median of `metric` over the repetitions that succeeded.
    fn value(&self, scenario: &str, server: &str, metric: &str) -> Option<f64> {
        let runs = self.runs(scenario, server)?;
        median(runs.values().filter_map(|r| get(r, metric)).collect())
    }
    /// The median over repetitions of (value / the floor's value in the same repetition).
    fn ratio(&self, scenario: &str, server: &str, metric: &str) -> Option<f64> {
        let runs = self.runs(scenario, server)?;
        let floor = self.runs(scenario, self.floor)?;
        median(
            runs.iter()
                .filter_map(|(rep, r)| Some(get(r, metric)? / get(floor.get(rep)?, metric)?))
                .collect(),
        )
    }
    fn failures(&self, scenario: &str, server: &str) -> usize {
        self.runs(scenario, server).map_or(0, |runs| {
            runs.values().filter(|r| r.get("error").is_some()).count()
        })
    }
}

fn fmt_num(v: Option<f64>, decimals: usize) -> String {
    match v {
        None => "–".into(),
        Some(v) if v >= 10_000.0 => {
            // Thousands separators for big counts.
            let s = format!("{:.0}", v);
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        Some(v) => format!("{v:.decimals$}"),
    }
}

fn with_ratio(v: Option<f64>, r: Option<f64>, decimals: usize) -> String {
    match (v, r) {
        (Some(_), Some(r)) => format!("{} ({r:.2}×)", fmt_num(v, decimals)),
        _ => fmt_num(v, decimals),
    }
}

fn markdown(t: &Table<'_>, servers: &[String]) -> String {
    let mut s = String::new();
    s.push_str("| server | RPC/s 50×1 | CPU µs/RPC 50×1 | p50 / p99 µs 50×1 | RPC/s 50×16 | CPU µs/RPC 50×16 | fan-out burst CPU µs/delivery | burst lost | burst deliveries/s | fan-out paced CPU µs/delivery | paced p50 / p99 µs | paced lost | idle RSS B/conn |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for server in servers {
        let rpc1 = "rpc_50x1";
        let rpc16 = "rpc_50x16";
        let burst = "fanout_burst";
        let paced = "fanout_paced";
        let cells = [
            with_ratio(
                t.value(rpc1, server, "ops_per_s"),
                t.ratio(rpc1, server, "ops_per_s"),
                0,
            ),
            with_ratio(
                t.value(rpc1, server, "server_cpu_us_per_op"),
                t.ratio(rpc1, server, "server_cpu_us_per_op"),
                2,
            ),
            format!(
                "{} / {}",
                fmt_num(t.value(rpc1, server, "latency.p50_us"), 0),
                fmt_num(t.value(rpc1, server, "latency.p99_us"), 0)
            ),
            with_ratio(
                t.value(rpc16, server, "ops_per_s"),
                t.ratio(rpc16, server, "ops_per_s"),
                0,
            ),
            with_ratio(
                t.value(rpc16, server, "server_cpu_us_per_op"),
                t.ratio(rpc16, server, "server_cpu_us_per_op"),
                2,
            ),
            with_ratio(
                t.value(burst, server, "server_cpu_us_per_op"),
                t.ratio(burst, server, "server_cpu_us_per_op"),
                3,
            ),
            fmt_num(t.value(burst, server, "lost"), 0),
            fmt_num(t.value(burst, server, "ops_per_s"), 0),
            with_ratio(
                t.value(paced, server, "server_cpu_us_per_op"),
                t.ratio(paced, server, "server_cpu_us_per_op"),
                3,
            ),
            format!(
                "{} / {}",
                fmt_num(t.value(paced, server, "latency.p50_us"), 0),
                fmt_num(t.value(paced, server, "latency.p99_us"), 0)
            ),
            fmt_num(t.value(paced, server, "lost"), 0),
            with_ratio(
                t.value("idle", server, "rss_per_conn"),
                t.ratio("idle", server, "rss_per_conn"),
                0,
            ),
        ];
        let _ = write!(s, "| {server} |");
        for c in cells {
            let _ = write!(s, " {c} |");
        }
        s.push('\n');
    }
    let mut notes = Vec::new();
    for scenario in t.results.keys() {
        for server in servers {
            let n = t.failures(scenario, server);
            if n > 0 {
                notes.push(format!("{server} failed {n} repetition(s) of {scenario}"));
            }
            let broken: f64 = t
                .runs(scenario, server)
                .map(|runs| {
                    runs.values()
                        .map(|r| {
                            get(r, "errors").unwrap_or(0.0)
                                + get(r, "member_errors").unwrap_or(0.0)
                                + get(r, "dropped_while_held").unwrap_or(0.0)
                                + get(r, "failed").unwrap_or(0.0)
                        })
                        .sum()
                })
                .unwrap_or(0.0);
            if broken > 0.0 {
                notes.push(format!("{server}: {broken} connection(s) failed or were closed by the server during {scenario} (all repetitions)"));
            }
        }
    }
    if !notes.is_empty() {
        s.push_str("\nFailures (failed runs are left out of the medians; see the raw results): ");
        s.push_str(&notes.join("; "));
        s.push('\n');
    }
    s
}

/// A grouped bar chart: one group per server, one bar per series.
fn bars(
    path: &PathBuf,
    title: &str,
    y_label: &str,
    servers: &[String],
    series: &[(&str, Vec<Option<f64>>)],
) -> anyhow::Result<()> {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-9)
        * 1.15;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = servers.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n - 0.5), 0.0..max)?;
    let names = servers.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(1)
        .x_labels(servers.len() * 2 + 1)
        .x_label_formatter(&move |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .draw()?;
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
    ];
    let k = series.len() as f64;
    let width = 0.8 / k;
    for (si, (name, values)) in series.iter().enumerate() {
        let color = palette[si % palette.len()];
        let x0 = -0.4 + si as f64 * width;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                let v = (*v)?;
                let left = i as f64 + x0;
                Some(Rectangle::new(
                    [(left, 0.0), (left + width * 0.92, v)],
                    color.filled(),
                ))
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let mut results: Results = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("bad line: {line}"))?;
        let (Some(scenario), Some(server)) = (
            v.get("scenario").and_then(Value::as_str),
            v.get("server").and_then(Value::as_str),
        ) else {
            continue;
        };
        let rep = v.get("rep").and_then(Value::as_u64).unwrap_or(0);
        seen.insert(server.to_owned());
        results
            .entry(scenario.to_owned())
            .or_default()
            .entry(server.to_owned())
            .or_default()
            .insert(rep, v.clone());
    }
    let mut servers: Vec<String> = args
        .order
        .iter()
        .filter(|s| seen.contains(*s))
        .cloned()
        .collect();
    servers.extend(seen.iter().filter(|s| !args.order.contains(s)).cloned());
    let t = Table {
        results: &results,
        floor: &args.floor,
    };
    std::fs::create_dir_all(&args.out_dir)?;
    let md = markdown(&t, &servers);
    std::fs::write(args.out_dir.join("table.md"), &md)?;
    print!("{md}");

    let col = |scenario: &str, metric: &str| -> Vec<Option<f64>> {
        servers
            .iter()
            .map(|s| t.value(scenario, s, metric))
            .collect()
    };
    let ratio = |scenario: &str, metric: &str| -> Vec<Option<f64>> {
        servers
            .iter()
            .map(|s| t.ratio(scenario, s, metric))
            .collect()
    };
    bars(
        &args.out_dir.join("throughput.svg"),
        "RPC throughput (median of repetitions)",
        "RPC/s",
        &servers,
        &[
            ("50 conns × 1 in flight", col("rpc_50x1", "ops_per_s")),
            ("50 conns × 16 in flight", col("rpc_50x16", "ops_per_s")),
        ],
    )?;
    bars(
        &args.out_dir.join("cpu_per_op.svg"),
        "Server CPU per operation, relative to the floor of the same repetition",
        "× floor",
        &servers,
        &[
            ("RPC 50×1", ratio("rpc_50x1", "server_cpu_us_per_op")),
            ("RPC 50×16", ratio("rpc_50x16", "server_cpu_us_per_op")),
            (
                "fan-out burst",
                ratio("fanout_burst", "server_cpu_us_per_op"),
            ),
            (
                "fan-out paced",
                ratio("fanout_paced", "server_cpu_us_per_op"),
            ),
        ],
    )?;
    bars(
        &args.out_dir.join("idle_memory.svg"),
        "Server RSS per idle connection",
        "bytes per connection",
        &servers,
        &[("idle", col("idle", "rss_per_conn"))],
    )?;
    Ok(())
}
