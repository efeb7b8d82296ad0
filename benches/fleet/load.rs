//! The load generator: HTTP/1.1 GETs over a fixed number of keep-alive connections (plain hyper
//! on tokio, one task per connection), closed-loop at the maximum rate or open-loop at a fixed
//! rate.
//!
//! At a fixed rate every request has a scheduled send time (`start + i / rate`), handed out to
//! whichever connection is free. A request sent on time is timed from its send; one sent late
//! (every connection was busy: the server fell behind) is timed from its *scheduled* time, so
//! the wait it spent queued counts — latency under overload is not hidden (coordinated
//! omission). At the maximum rate each connection sends its next request as soon as the last
//! answer is read, and latency is timed from the send.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::stats::{Latency, micros};

/// What to request: GETs of `paths`, in turn, with a bearer token.
pub struct Target {
    pub addr: SocketAddr,
    pub paths: Vec<Uri>,
    pub authorization: HeaderValue,
}

/// How hard to push.
#[derive(Debug, Clone, Copy)]
pub enum Rate {
    /// Closed loop: every connection sends as fast as answers come back.
    Max,
    /// Open loop: this many requests per second in total.
    Fixed(f64),
}

/// The outcome of one load run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadResult {
    pub endpoint: String,
    /// `max` or `fixed`.
    pub mode: &'static str,
    pub connections: usize,
    /// Requests per second asked for (fixed rate only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub requests: u64,
    /// Non-2xx answers and failed connections.
    pub errors: u64,
    /// Completed 2xx requests per second.
    pub per_second: f64,
    pub latency: Latency,
    /// Mean body size of the answers.
    pub mean_body_bytes: u64,
    /// Answers by status code (non-2xx only), and transport failures under `0`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_statuses: Vec<(u16, u64)>,
    /// CPU the server used during the run, in cores (from its `/proc/<pid>/stat`).
    pub server_cpu_cores: f64,
    /// CPU the load generator (this benchmark's process) used, in cores.
    pub client_cpu_cores: f64,
    /// CPU everything else on the machine used meanwhile (Docker, other work), in cores: a
    /// busy machine shows here.
    pub others_cpu_cores: f64,
}

struct Shared {
    target: Arc<Target>,
    rate: Rate,
    started: Instant,
    deadline: Instant,
    /// Next request index, for the schedule and the choice of path.
    next: AtomicU64,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<u32>,
    errors: u64,
    body_bytes: u64,
    statuses: Vec<(u16, u64)>,
}

impl Tally {
    fn error(&mut self, status: u16) {
        self.errors += 1;
        match self.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.statuses.push((status, 1)),
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One connection's loop until the deadline.
async fn connection(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    let target = &shared.target;
    let host = HeaderValue::from_static("127.0.0.1");
    let mut sender: Option<Sender> = None;
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let timed_from = match shared.rate {
            Rate::Max => {
                if Instant::now() >= shared.deadline {
                    break;
                }
                None
            }
            Rate::Fixed(rate) => {
                let due = shared.started + Duration::from_secs_f64(i as f64 / rate);
                if due >= shared.deadline {
                    break;
                }
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                    None
                } else {
                    // Late: the queueing counts.
                    Some(due)
                }
            }
        };
        if sender.is_none() {
            match connect(target.addr).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    tally.error(0);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let path = &target.paths[(i % target.paths.len() as u64) as usize];
        let request = Request::get(path.clone())
            .header(HOST, host.clone())
            .header(AUTHORIZATION, target.authorization.clone())
            .body(Empty::<Bytes>::new());
        let Ok(request) = request else {
            tally.error(0);
            continue;
        };
        let sent = Instant::now();
        let result = async {
            s.ready().await.map_err(|_| 0u16)?;
            let response = s.send_request(request).await.map_err(|_| 0u16)?;
            let status = response.status();
            let mut body = response.into_body();
            let mut bytes = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| 0u16)?;
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                }
            }
            if status.is_success() {
                Ok(bytes)
            } else {
                Err(status.as_u16())
            }
        }
        .await;
        let elapsed = timed_from.unwrap_or(sent).elapsed();
        match result {
            Ok(bytes) => {
                tally.latencies.push(micros(elapsed));
                tally.body_bytes += bytes;
            }
            Err(status) => {
                tally.error(status);
                if status == 0 {
                    sender = None;
                }
            }
        }
    }
    tally
}

/// Run `connections` connections against `target` for `duration` at `rate`.
pub async fn run(
    endpoint: &str,
    target: Arc<Target>,
    connections: usize,
    rate: Rate,
    duration: Duration,
) -> LoadResult {
    let started = Instant::now();
    let shared = Arc::new(Shared {
        target,
        rate,
        started,
        deadline: started + duration,
        next: AtomicU64::new(0),
    });
    let tasks: Vec<_> = (0..connections.max(1))
        .map(|_| tokio::spawn(connection(shared.clone())))
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        if let Ok(t) = task.await {
            all.latencies.extend(t.latencies);
            all.errors += t.errors;
            all.body_bytes += t.body_bytes;
            for (status, n) in t.statuses {
                match all.statuses.iter_mut().find(|(s, _)| *s == status) {
                    Some((_, total)) => *total += n,
                    None => all.statuses.push((status, n)),
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = all.latencies.len() as u64;
    all.statuses.sort();
    LoadResult {
        endpoint: endpoint.to_string(),
        mode: match rate {
            Rate::Max => "max",
            Rate::Fixed(_) => "fixed",
        },
        connections,
        target_rate: match rate {
            Rate::Max => None,
            Rate::Fixed(r) => Some(r),
        },
        duration_s: elapsed,
        requests: ok + all.errors,
        errors: all.errors,
        per_second: ok as f64 / elapsed,
        latency: Latency::from_micros(all.latencies),
        mean_body_bytes: all.body_bytes.checked_div(ok).unwrap_or(0),
        error_statuses: all.statuses,
        server_cpu_cores: 0.0,
        client_cpu_cores: 0.0,
        others_cpu_cores: 0.0,
    }
}
