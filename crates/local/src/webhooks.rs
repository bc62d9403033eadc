//! The webhook sender of the local deployment.
//!
//! The store writes one `pending` row into `webhook_deliveries` per
//! (subscribed endpoint, event), in the same transaction as the event. This
//! worker opens its own SQLite connection to the same database. It sends each
//! due delivery as `POST <endpoint_url>` with the event JSON as the body and a
//! `WorkOS-Signature` header computed at send time. Every attempt is recorded
//! in `webhook_attempts`. Failures are retried with the backoff of
//! [`dsync_core::webhook::retry_delay`] (about 3 days in all), then marked
//! `failed`. Pending rows live in the database, so a restart resumes where the
//! last run stopped: delivery is at least once.
//!
//! Each endpoint is served by its own task, so a slow or dead receiver never
//! delays another. Within one endpoint, deliveries go out in event order:
//! when a receiver looks down (no response, a timeout, 408, 429 or 5xx), every
//! pending delivery of that endpoint waits for the failed one's retry time, so
//! later events do not overtake it. A receiver that answers with another
//! status (a 4xx) is up but rejected that one event; the next events go on,
//! and the rejected one is retried on its own schedule.
//!
//! Before connecting, the sender checks where the URL leads: it resolves the
//! host itself and refuses link-local, cloud metadata, unspecified and
//! multicast addresses always, and loopback and private ranges unless
//! [`WorkerOptions::allow_private_targets`] is set. The connection goes to the
//! addresses it checked, so a DNS answer that changes after the endpoint was
//! registered cannot redirect deliveries into the server's own network. A
//! refusal is recorded as a failed attempt whose error starts with
//! `refused:`. The client ignores proxy settings, which would otherwise
//! resolve the host where this check cannot see it.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use dsync_core::time::Timestamp;
use dsync_core::webhook::{self, classify_address, AddressClass};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Tuning of the worker. [`run`] uses the defaults.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// How often the worker looks for due deliveries.
    pub poll_interval: Duration,
    /// Time allowed for one POST, connection included.
    pub request_timeout: Duration,
    /// Endpoints served at the same time; more wait for a free slot.
    pub max_concurrent_endpoints: usize,
    /// The wait after failed attempt number `n` (1 is the first send), or
    /// `None` to give up and mark the delivery failed.
    pub retry_delay: fn(u32) -> Option<Duration>,
    /// Whether deliveries may go to loopback and private addresses
    /// (`127.0.0.0/8`, `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`,
    /// `100.64.0.0/10`, `::1`, `fc00::/7`). Off by default; link-local,
    /// metadata, unspecified and multicast addresses are refused either way.
    pub allow_private_targets: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            max_concurrent_endpoints: 32,
            retry_delay: webhook::retry_delay,
            allow_private_targets: false,
        }
    }
}

/// Runs the webhook sender over the SQLite database at `database_path` until
/// `shutdown` completes, then waits for requests in flight (each bounded by
/// the request timeout) and returns.
///
/// Fails only when the database cannot be opened; later database and network
/// errors are logged with the endpoint and event ids and retried.
pub async fn run(database_path: PathBuf, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_with_options(database_path, WorkerOptions::default(), shutdown).await
}

/// [`run`] with explicit [`WorkerOptions`].
pub async fn run_with_options(
    database_path: PathBuf,
    options: WorkerOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let database = Database::open(&database_path)?;
    let client = reqwest::Client::builder()
        .timeout(options.request_timeout)
        // A redirect is a failed delivery: the signature covers one URL's
        // body, and following it would send events somewhere unregistered.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver {
            allow_private: options.allow_private_targets,
        }))
        .user_agent(concat!("dsync-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client for webhook delivery")?;
    let worker = Worker {
        database,
        client,
        options: options.clone(),
        slots: Arc::new(Semaphore::new(options.max_concurrent_endpoints.max(1))),
    };

    tracing::info!(database = %database_path.display(), "webhook worker started");
    let (stop_sender, stop_receiver) = watch::channel(false);
    let mut tasks: HashMap<String, JoinHandle<()>> = HashMap::new();
    tokio::pin!(shutdown);

    loop {
        tasks.retain(|_, task| !task.is_finished());

        match worker.database.due_endpoints().await {
            Ok(endpoints) => {
                for endpoint_id in endpoints {
                    if tasks.contains_key(&endpoint_id) {
                        continue;
                    }
                    let task = tokio::spawn(
                        worker
                            .clone()
                            .serve_endpoint(endpoint_id.clone(), stop_receiver.clone()),
                    );
                    tasks.insert(endpoint_id, task);
                }
            }
            Err(error) => tracing::error!(%error, "cannot read due webhook deliveries; retrying"),
        }

        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(options.poll_interval) => {}
        }
    }

    tracing::info!(endpoints_in_flight = tasks.len(), "webhook worker stopping");
    let _ = stop_sender.send(true);
    for (endpoint_id, task) in tasks {
        if let Err(error) = task.await {
            tracing::error!(endpoint_id = %endpoint_id, %error, "webhook endpoint task failed");
        }
    }
    tracing::info!("webhook worker stopped");
    Ok(())
}

#[derive(Clone)]
struct Worker {
    database: Database,
    client: reqwest::Client,
    options: WorkerOptions,
    slots: Arc<Semaphore>,
}

/// What one POST returned.
enum Outcome {
    Delivered {
        status: u16,
    },
    /// The receiver answered but rejected this event; later events may go on.
    Rejected {
        status: u16,
    },
    /// No usable answer (connection error, timeout, 408, 429, 5xx); the
    /// endpoint's other deliveries wait too.
    Unreachable {
        status: Option<u16>,
        error: String,
    },
}

impl Worker {
    /// Sends the endpoint's due deliveries one by one in event order until
    /// none is due, the receiver looks down, or the worker stops.
    async fn serve_endpoint(self, endpoint_id: String, stop: watch::Receiver<bool>) {
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return;
        };

        while !*stop.borrow() {
            let delivery = match self.database.next_due(&endpoint_id).await {
                Ok(Some(delivery)) => delivery,
                Ok(None) => break,
                Err(error) => {
                    tracing::error!(endpoint_id = %endpoint_id, %error, "cannot read the next webhook delivery; retrying on the next poll");
                    break;
                }
            };

            let Some(body) = delivery.body.as_deref() else {
                // Retention purged the event, so there is nothing left to send.
                tracing::warn!(endpoint_id = %endpoint_id, event_id = %delivery.event_id, "webhook event no longer stored; marking the delivery failed");
                if let Err(error) = self.database.mark_gone(delivery.id).await {
                    tracing::error!(endpoint_id = %endpoint_id, event_id = %delivery.event_id, %error, "cannot update webhook delivery");
                }
                continue;
            };

            let outcome = self
                .send(&delivery.endpoint_url, &delivery.secret, body)
                .await;
            let keep_going = !matches!(outcome, Outcome::Unreachable { .. });
            if let Err(error) = self.record(&endpoint_id, &delivery, outcome).await {
                tracing::error!(endpoint_id = %endpoint_id, event_id = %delivery.event_id, %error, "cannot record webhook attempt; it will be sent again");
                break;
            }
            if !keep_going {
                break;
            }
        }
    }

    async fn send(&self, url: &str, secret: &str, body: &str) -> Outcome {
        // A host written as an IP address is never resolved, so it is
        // checked here; names are checked by the resolver.
        if let Err(refused) = check_url_host(url, self.options.allow_private_targets) {
            return Outcome::Unreachable {
                status: None,
                error: refused.to_string(),
            };
        }
        // Signed at send time: receivers reject timestamps over 3 minutes old.
        let signature =
            webhook::signature_header(secret, Timestamp::now().millis(), body.as_bytes());
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(webhook::SIGNATURE_HEADER, signature)
            .body(body.to_owned());

        match request.send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Outcome::Delivered {
                        status: status.as_u16(),
                    }
                } else if status.is_server_error()
                    || status.as_u16() == 408
                    || status.as_u16() == 429
                {
                    Outcome::Unreachable {
                        status: Some(status.as_u16()),
                        error: format!("receiver answered {status}"),
                    }
                } else {
                    Outcome::Rejected {
                        status: status.as_u16(),
                    }
                }
            }
            Err(error) => Outcome::Unreachable {
                status: None,
                error: describe_request_error(&error),
            },
        }
    }

    async fn record(
        &self,
        endpoint_id: &str,
        delivery: &Delivery,
        outcome: Outcome,
    ) -> anyhow::Result<()> {
        let attempt = delivery.attempt + 1;
        let (status, error, succeeded, endpoint_down) = match outcome {
            Outcome::Delivered { status } => (Some(status), None, true, false),
            Outcome::Rejected { status } => (
                Some(status),
                Some(format!("receiver answered {status}")),
                false,
                false,
            ),
            Outcome::Unreachable { status, error } => (status, Some(error), false, true),
        };

        let retry_at_ms = if succeeded {
            None
        } else {
            (self.options.retry_delay)(attempt)
                .map(|delay| Timestamp::now().millis() + millis(delay))
        };

        let record = AttemptRecord {
            delivery_id: delivery.id,
            endpoint_id: endpoint_id.to_owned(),
            event_id: delivery.event_id.clone(),
            attempt,
            status,
            error: error.clone(),
            succeeded,
            retry_at_ms,
            hold_endpoint: endpoint_down,
        };
        self.database.record_attempt(record).await?;

        let event_id = &delivery.event_id;
        let error = error.unwrap_or_default();
        if succeeded {
            if attempt > 1 {
                tracing::info!(
                    endpoint_id,
                    event_id,
                    attempt,
                    "webhook delivered after retry"
                );
            }
        } else if let Some(retry_at_ms) = retry_at_ms {
            let retry_at = Timestamp::from_millis(retry_at_ms);
            tracing::warn!(endpoint_id, event_id, attempt, %error, %retry_at, "webhook delivery failed; will retry");
        } else {
            tracing::error!(endpoint_id, event_id, attempt, %error, "webhook delivery failed for good; no retries left");
        }
        Ok(())
    }
}

/// A reqwest error with its cause chain, which names the real problem
/// (connection refused, DNS failure) that the top-level message hides. A
/// refusal by [`CheckedResolver`] is reported alone.
fn describe_request_error(error: &reqwest::Error) -> String {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<TargetRefused>() {
            return refused.to_string();
        }
        source = cause.source();
    }
    let mut text = if error.is_timeout() {
        "request timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A webhook target this server must not connect to.
#[derive(Debug)]
struct TargetRefused(String);

impl std::fmt::Display for TargetRefused {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "refused: {}", self.0)
    }
}

impl std::error::Error for TargetRefused {}

/// Host names of cloud metadata services, refused before any lookup.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.com",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Checks the host of a URL that is an IP address or a metadata host name.
fn check_url_host(url: &str, allow_private: bool) -> Result<(), TargetRefused> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|error| TargetRefused(format!("the endpoint URL cannot be parsed: {error}")))?;
    let Some(host) = parsed.host_str() else {
        return Err(TargetRefused("the endpoint URL has no host".to_owned()));
    };
    // The URL parser writes IP hosts in canonical form, IPv6 in brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return check_address(None, ip, allow_private);
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if METADATA_HOSTS.contains(&name.as_str()) {
        return Err(TargetRefused(format!(
            "{name} is a cloud metadata service host"
        )));
    }
    Ok(())
}

fn check_address(name: Option<&str>, ip: IpAddr, allow_private: bool) -> Result<(), TargetRefused> {
    let place = match name {
        Some(name) => format!("{name} resolves to {ip}, which"),
        None => ip.to_string(),
    };
    match classify_address(ip) {
        AddressClass::Public => Ok(()),
        AddressClass::Private(_) if allow_private => Ok(()),
        AddressClass::Private(kind) => Err(TargetRefused(format!(
            "{place} is a {kind} address and private webhook targets are not allowed"
        ))),
        AddressClass::Forbidden(kind) => Err(TargetRefused(format!(
            "{place} is a {kind} address, which never receives webhooks"
        ))),
    }
}

/// Resolves webhook hosts and refuses the lookup when any address it finds
/// is not an allowed target, so the connection only goes to checked addresses.
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let lowered = host.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&lowered.as_str()) {
                return Err(
                    TargetRefused(format!("{lowered} is a cloud metadata service host")).into(),
                );
            }
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for address in &addresses {
                check_address(Some(&host), address.ip(), allow_private)?;
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A due delivery with what sending it needs.
struct Delivery {
    id: i64,
    event_id: String,
    /// Attempts made so far.
    attempt: u32,
    endpoint_url: String,
    secret: String,
    /// The stored wire body of the event, or `None` when the event was purged.
    body: Option<String>,
}

struct AttemptRecord {
    delivery_id: i64,
    endpoint_id: String,
    event_id: String,
    attempt: u32,
    status: Option<u16>,
    error: Option<String>,
    succeeded: bool,
    /// When to try again; `None` after a success or when no retries are left.
    retry_at_ms: Option<i64>,
    /// Whether the endpoint's other pending deliveries wait until `retry_at_ms` too.
    hold_endpoint: bool,
}

/// The worker's own connection. Calls are short and run on the blocking pool.
#[derive(Clone)]
struct Database {
    connection: Arc<Mutex<Connection>>,
}

impl Database {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let connection = Connection::open(path)
            .with_context(|| format!("cannot open webhook database {}", path.display()))?;
        crate::store::schema::prepare(&connection)
            .with_context(|| format!("cannot prepare webhook database {}", path.display()))?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn with<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = self.connection.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut guard = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut guard)
        })
        .await
        .context("webhook database task failed")?;
        Ok(result?)
    }

    /// Enabled endpoints with at least one pending delivery due now.
    async fn due_endpoints(&self) -> anyhow::Result<Vec<String>> {
        let now_ms = Timestamp::now().millis();
        self.with(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT DISTINCT d.endpoint_id FROM webhook_deliveries d \
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                 WHERE d.state = 'pending' AND d.next_attempt_at_ms <= ?1 AND e.status = 'enabled'",
            )?;
            let rows = statement.query_map([now_ms], |row| row.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }

    /// Returns the endpoint's oldest due delivery by event id (event ids sort
    /// in commit order), or `None` when nothing is due or the endpoint is gone
    /// or disabled.
    ///
    /// A delivery waits while an older one of the same endpoint waits for a
    /// retry, unless that older one was rejected by the receiver (a 4xx other
    /// than 408 and 429). So an event committed while the receiver is down
    /// does not overtake the events queued before it.
    async fn next_due(&self, endpoint_id: &str) -> anyhow::Result<Option<Delivery>> {
        let endpoint_id = endpoint_id.to_owned();
        let now_ms = Timestamp::now().millis();
        self.with(move |connection| {
            connection
                .prepare_cached(
                    "SELECT d.id, d.event_id, d.attempt, e.endpoint_url, e.secret, ev.body_json \
                     FROM webhook_deliveries d \
                     JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                     LEFT JOIN events ev ON ev.id = d.event_id \
                     WHERE d.endpoint_id = ?1 AND d.state = 'pending' AND d.next_attempt_at_ms <= ?2 \
                       AND e.status = 'enabled' \
                       AND NOT EXISTS ( \
                         SELECT 1 FROM webhook_deliveries p \
                         WHERE p.endpoint_id = d.endpoint_id AND p.state = 'pending' \
                           AND p.event_id < d.event_id AND p.next_attempt_at_ms > ?2 \
                           AND NOT (COALESCE(p.last_status, 0) BETWEEN 400 AND 499 \
                                    AND p.last_status NOT IN (408, 429))) \
                     ORDER BY d.event_id, d.id LIMIT 1",
                )?
                .query_row(params![endpoint_id, now_ms], |row| {
                    Ok(Delivery {
                        id: row.get(0)?,
                        event_id: row.get(1)?,
                        attempt: row.get(2)?,
                        endpoint_url: row.get(3)?,
                        secret: row.get(4)?,
                        body: row.get(5)?,
                    })
                })
                .optional()
        })
        .await
    }

    /// Writes the attempt and the delivery's new state in one transaction, so
    /// a crash between the two cannot lose the attempt or its outcome.
    async fn record_attempt(&self, record: AttemptRecord) -> anyhow::Result<()> {
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            transaction.execute(
                "INSERT INTO webhook_attempts (endpoint_id, event_id, attempt, attempted_at, status_code, error, succeeded) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    record.endpoint_id,
                    record.event_id,
                    record.attempt,
                    Timestamp::now().to_string(),
                    record.status,
                    record.error,
                    record.succeeded,
                ],
            )?;

            let state = match (record.succeeded, record.retry_at_ms) {
                (true, _) => "succeeded",
                (false, Some(_)) => "pending",
                (false, None) => "failed",
            };
            transaction.execute(
                "UPDATE webhook_deliveries SET attempt = ?2, state = ?3, last_status = ?4, last_error = ?5, \
                 next_attempt_at_ms = COALESCE(?6, next_attempt_at_ms) WHERE id = ?1",
                params![
                    record.delivery_id,
                    record.attempt,
                    state,
                    record.status,
                    record.error,
                    record.retry_at_ms,
                ],
            )?;

            if let (true, Some(retry_at_ms)) = (record.hold_endpoint, record.retry_at_ms) {
                // Keeps event order across restarts: no later delivery of this
                // endpoint becomes due before the failed one is retried.
                transaction.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at_ms = ?2 \
                     WHERE endpoint_id = ?1 AND state = 'pending' AND next_attempt_at_ms < ?2",
                    params![record.endpoint_id, retry_at_ms],
                )?;
            }
            transaction.commit()
        })
        .await
    }

    async fn mark_gone(&self, delivery_id: i64) -> anyhow::Result<()> {
        self.with(move |connection| {
            connection.execute(
                "UPDATE webhook_deliveries SET state = 'failed', last_error = 'event no longer stored' WHERE id = ?1",
                [delivery_id],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;

    #[test]
    fn literal_hosts_are_checked() {
        assert!(check_url_host("http://169.254.169.254/latest/meta-data", true).is_err());
        assert!(check_url_host("http://[fe80::1]:8080/", true).is_err());
        assert!(check_url_host("http://[::ffff:169.254.169.254]/", true).is_err());
        assert!(check_url_host("http://metadata.google.internal/", true).is_err());
        assert!(check_url_host("http://127.0.0.1:9000/hook", false).is_err());
        assert!(check_url_host("http://[::1]:9000/hook", false).is_err());
        assert!(check_url_host("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url_host("https://hooks.example.com/", false).is_ok());
        let error = check_url_host("http://10.0.0.5/", false).unwrap_err();
        assert!(error
            .to_string()
            .starts_with("refused: 10.0.0.5 is a private address"));
    }
}
