//! Turning what every client saw into the run's figures: deliveries, latency percentiles, lost
//! messages, evictions and the server's CPU and memory; printed as a summary and one JSON line.

use serde_json::{json, Value};

use crate::client::{ClientResult, End, Role};
use crate::procfs::Sample;
use crate::Args;

/// Close codes that mean "evicted for being slow".
const EVICTED: [u16; 2] = [4001, 4002];

/// Every figure of one run.
#[derive(Default)]
pub(crate) struct Report {
    label: String,
    mode: &'static str,
    clients: usize,
    senders: usize,
    slow: usize,
    rooms: usize,
    rate: f64,
    window: u64,
    duration_s: f64,
    pub(crate) connected: usize,
    pub(crate) connect_failures: usize,
    pub(crate) connect_s: f64,
    pub(crate) settle_s: f64,
    pub(crate) send_s: f64,
    pub(crate) drain_s: f64,
    pub(crate) drained: bool,
    pub(crate) held_s: f64,
    pub(crate) send_started_ns: u64,
    pub(crate) server_idle: Option<Sample>,
    pub(crate) server_held: Option<Sample>,
    pub(crate) server_start: Option<Sample>,
    pub(crate) server_end: Option<Sample>,
    pub(crate) generator_cpu_s: f64,
    /// What the background clients did (`--churn`, `--attackers`).
    pub(crate) background: Option<Value>,
    /// (seconds into sending, server RSS KiB), every `--rss-every` seconds.
    pub(crate) rss_curve: Vec<(f64, u64)>,
    sent: u64,
    delivered: u64,
    slow_delivered: u64,
    deliveries_per_s: f64,
    lost: u64,
    duplicates: u64,
    errors: u64,
    evicted: usize,
    disconnected: usize,
    stayed: usize,
    slow_evicted: usize,
    slow_dropped: usize,
    slow_open: usize,
    sender_failures: usize,
    /// How reading clients' connections ended that the server closed: code -> clients.
    close_codes: std::collections::BTreeMap<u16, usize>,
    /// p50, p90, p99, p99.9, max in milliseconds.
    latency_ms: Option<[f64; 5]>,
}

impl Report {
    pub(crate) fn new(args: &Args) -> Self {
        Self {
            label: args.label.clone(),
            mode: if args.connect_only { "connect" } else { "chat" },
            clients: args.clients,
            senders: if args.connect_only { 0 } else { args.senders },
            slow: if args.connect_only { 0 } else { args.slow },
            rooms: args.rooms,
            rate: args.rate,
            window: args.window,
            duration_s: args.duration,
            ..Self::default()
        }
    }

    /// Accounts for every client; `sent[s]` is (messages written, socket failed) of sender s.
    pub(crate) fn tally(&mut self, results: &[ClientResult], sent: &[(u64, bool)], rooms: usize) {
        self.sent = sent.iter().map(|s| s.0).sum();
        self.sender_failures = sent.iter().filter(|s| s.1).count();
        // A message counts as sent when written by a sender that stayed connected, or when
        // anyone received it (a sender that was cut off may have written more than arrived).
        let mut expected: Vec<u64> = vec![0; sent.len()];
        for r in results {
            for (e, got) in expected.iter_mut().zip(&r.received) {
                *e = (*e).max(*got);
            }
        }
        for r in results {
            if let Role::Sender(id) = r.role {
                if r.end == End::Open && !sent[id].1 {
                    expected[id] = expected[id].max(sent[id].0);
                }
            }
        }
        let mut latencies = Vec::new();
        let mut last_delivery = 0u64;
        for r in results {
            if r.role == Role::Slow {
                self.slow_delivered += r.deliveries;
                match r.end {
                    End::Closed(code) if EVICTED.contains(&code) => self.slow_evicted += 1,
                    End::Open => self.slow_open += 1,
                    End::Failed => {}
                    _ => self.slow_dropped += 1,
                }
                continue;
            }
            self.delivered += r.deliveries;
            self.duplicates += r.duplicates;
            self.errors += r.errors;
            latencies.extend_from_slice(&r.latencies_ns);
            last_delivery = last_delivery.max(r.last_delivery_ns);
            if let End::Closed(code) = r.end {
                *self.close_codes.entry(code).or_default() += 1;
            }
            match r.end {
                End::Open => {
                    self.stayed += 1;
                    self.lost += r.gaps;
                    for (id, want) in expected.iter().enumerate() {
                        if id % rooms == r.room {
                            self.lost += want.saturating_sub(r.received[id]);
                        }
                    }
                }
                End::Closed(code) if EVICTED.contains(&code) => self.evicted += 1,
                End::Failed => {}
                _ => self.disconnected += 1,
            }
        }
        if self.send_started_ns > 0 && last_delivery > self.send_started_ns {
            let span = (last_delivery - self.send_started_ns) as f64 / 1e9;
            if span > 0.0 {
                self.deliveries_per_s = self.delivered as f64 / span;
            }
        }
        if !latencies.is_empty() {
            latencies.sort_unstable();
            let at = |q: f64| {
                let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
                latencies[i - 1] as f64 / 1e6
            };
            self.latency_ms = Some([at(0.5), at(0.9), at(0.99), at(0.999), at(1.0)]);
        }
    }

    fn server_cpu_s(&self) -> Option<f64> {
        Some(self.server_end?.cpu_s - self.server_start?.cpu_s)
    }

    fn rss_per_connection_kb(&self, sample: Option<Sample>) -> Option<f64> {
        let grown = sample?.rss_kb as f64 - self.server_idle?.rss_kb as f64;
        (self.connected > 0).then(|| grown / self.connected as f64)
    }

    pub(crate) fn print_summary(&self) {
        if self.mode == "connect" {
            println!(
                "held {} of {} connections for {:.1} s; {} dropped",
                self.stayed,
                self.clients,
                self.held_s,
                self.disconnected + self.evicted
            );
            if let (Some(idle), Some(held)) = (self.server_idle, self.server_held) {
                println!(
                    "server RSS {} KiB idle -> {} KiB with the connections: {:.2} KiB per connection",
                    idle.rss_kb,
                    held.rss_kb,
                    self.rss_per_connection_kb(Some(held)).unwrap_or(0.0)
                );
            }
            return;
        }
        println!(
            "sent {} messages in {:.2} s; {} deliveries to reading clients ({:.0}/s), drained: {}",
            self.sent, self.send_s, self.delivered, self.deliveries_per_s, self.drained
        );
        if let Some([p50, p90, p99, p999, max]) = self.latency_ms {
            println!(
                "latency ms: p50 {p50:.3} p90 {p90:.3} p99 {p99:.3} p99.9 {p999:.3} max {max:.3}"
            );
        }
        println!(
            "lost {} duplicates {} errors {}; reading clients: {} stayed, {} evicted, {} otherwise disconnected (close codes {:?})",
            self.lost, self.duplicates, self.errors, self.stayed, self.evicted, self.disconnected, self.close_codes
        );
        if self.slow > 0 {
            println!(
                "slow clients: {} evicted, {} dropped, {} still open; {} deliveries",
                self.slow_evicted, self.slow_dropped, self.slow_open, self.slow_delivered
            );
        }
        if let Some(background) = &self.background {
            println!("background clients: {background}");
        }
        if !self.rss_curve.is_empty() {
            let curve: Vec<String> = (self.rss_curve.iter())
                .map(|(t, kb)| format!("{t:.0}s {} MiB", kb / 1024))
                .collect();
            println!("server RSS: {}", curve.join(", "));
        }
        if let Some(cpu) = self.server_cpu_s() {
            println!(
                "server: {cpu:.2} CPU-s, {:.2} CPU-s per million deliveries, RSS {} KiB (peak {} KiB); generator {:.2} CPU-s",
                cpu * 1e6 / self.delivered.max(1) as f64,
                self.server_end.map_or(0, |s| s.rss_kb),
                self.server_end.map_or(0, |s| s.hwm_kb),
                self.generator_cpu_s
            );
        }
    }

    pub(crate) fn json(&self) -> String {
        let server = |s: Option<Sample>| {
            s.map(|s| json!({"cpu_s": round(s.cpu_s, 2), "rss_kb": s.rss_kb, "hwm_kb": s.hwm_kb}))
        };
        let mut value = json!({
            "label": self.label,
            "mode": self.mode,
            "clients": self.clients,
            "rooms": self.rooms,
            "connected": self.connected,
            "connect_failures": self.connect_failures,
            "connect_s": round(self.connect_s, 3),
            "joined_s": round(self.settle_s, 3),
            "stayed": self.stayed,
            "evicted": self.evicted,
            "disconnected": self.disconnected,
            "close_codes": self.close_codes.iter().map(|(c, n)| (c.to_string(), Value::from(*n))).collect::<serde_json::Map<String, Value>>(),
            "server_idle": server(self.server_idle),
            "server_end": server(self.server_end),
            "generator_cpu_s": round(self.generator_cpu_s, 2),
        });
        let extra = if self.mode == "connect" {
            json!({
                "held_s": self.held_s,
                "server_held": server(self.server_held),
                "rss_per_connection_kb": self.rss_per_connection_kb(self.server_held).map(|v| round(v, 2)),
                "rss_per_connection_kb_at_end": self.rss_per_connection_kb(self.server_end).map(|v| round(v, 2)),
            })
        } else {
            let latency = self.latency_ms.map(|[p50, p90, p99, p999, max]| {
                json!({"p50": round(p50, 3), "p90": round(p90, 3), "p99": round(p99, 3),
                       "p999": round(p999, 3), "max": round(max, 3)})
            });
            let cpu = self.server_cpu_s();
            json!({
                "senders": self.senders,
                "slow": self.slow,
                "rate": self.rate,
                "window": self.window,
                "duration_s": self.duration_s,
                "send_s": round(self.send_s, 3),
                "drain_s": round(self.drain_s, 3),
                "drained": self.drained,
                "sent": self.sent,
                "sent_per_s": round(self.sent as f64 / self.send_s.max(1e-9), 1),
                "delivered": self.delivered,
                "deliveries_per_s": round(self.deliveries_per_s, 0),
                "latency_ms": latency,
                "lost": self.lost,
                "duplicates": self.duplicates,
                "errors": self.errors,
                "sender_failures": self.sender_failures,
                "slow_evicted": self.slow_evicted,
                "slow_dropped": self.slow_dropped,
                "slow_open": self.slow_open,
                "slow_delivered": self.slow_delivered,
                "background": self.background,
                "rss_curve_kb": self.rss_curve.iter().map(|(t, kb)| json!([round(*t, 1), kb])).collect::<Vec<_>>(),
                "server_start": server(self.server_start),
                "server_cpu_s": cpu.map(|c| round(c, 3)),
                "server_cpu_s_per_million_deliveries":
                    cpu.map(|c| round(c * 1e6 / self.delivered.max(1) as f64, 3)),
            })
        };
        if let (Value::Object(a), Value::Object(b)) = (&mut value, extra) {
            a.extend(b);
        }
        value.to_string()
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}
