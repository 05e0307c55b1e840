use phoenix::{App, Config};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

/// An HTTP client for a running Phoenix, in this process or not.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(address: &str) -> Api {
        Api {
            base: format!("http://{address}"),
            http: reqwest::Client::new(),
        }
    }
}

/// A running app. Dropping it stops the server and deletes its data.
pub struct TestApp {
    pub api: Api,
    pub identity: Option<phoenix_identity::Service>,
    pub catalog: Option<phoenix_catalog::Catalog>,
    pub simulator: Option<phoenix_payment::Simulator>,
    /// The service databases whose outboxes this process relays, by role.
    pub outboxes: Vec<(phoenix::config::Role, phoenix_db::Pool)>,
    /// What seals the app's stored secrets (its key file, or the configured key).
    pub sealer: phoenix_db::Sealer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _data: tempfile::TempDir,
}

/// Test defaults: fresh SQLite data, limits out of the way unless a test sets them.
pub fn config() -> Config {
    let mut config = Config::default();
    config.gateway.rate_limit_per_user_per_min = 100_000;
    config.gateway.rate_limit_per_ip_per_min = 100_000;
    // A booking request answers as soon as its saga is done; on a loaded two-core machine that can take longer than
    // the default three seconds, and a 202 would only make the tests poll.
    config.booking.confirm_wait_ms = 30_000;
    config
}

/// The machine's NATS server (`PHOENIX_TEST_NATS_URL`, else the standard port on loopback).
pub fn nats_url() -> String {
    std::env::var("PHOENIX_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A NATS JetStream bus at `url` with subjects and streams of this test's own, so tests sharing a server never
/// read each other's events.
pub fn nats_bus(url: String) -> phoenix::config::Bus {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    phoenix::config::Bus::Nats(phoenix_events::NatsOptions {
        url,
        subject_prefix: format!("t{tag}"),
        stream_prefix: format!("T{}", tag.to_uppercase()),
        max_age_hours: 1,
        ..phoenix_events::NatsOptions::default()
    })
}

pub async fn spawn() -> TestApp {
    spawn_with(config()).await
}

pub async fn spawn_with(config: Config) -> TestApp {
    spawn_on(config, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

/// Starts the app on a listener bound beforehand, for processes that must know each other's address up front.
pub async fn spawn_on(mut config: Config, listener: tokio::net::TcpListener) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    if config.data_dir == Config::default().data_dir {
        config.data_dir = data.path().to_owned();
    }
    // On PostgreSQL a deployment must name its secrets key, as every replica shares it.
    if config.database_url.is_some() && config.secrets_key.is_none() {
        config.secrets_key = Some(phoenix::config::Secret::new(crate::process::SECRETS_KEY));
    }
    config
        .validate()
        .expect("tests run with a configuration phoenix would accept");
    let app = App::build(config.clone()).await.expect("app builds");
    let identity = app.identity().cloned();
    let catalog = app.catalog().cloned();
    let simulator = app.services().simulator.clone();
    let outboxes = app.outboxes().to_vec();
    let sealer = config.sealer().expect("the key the app started with");
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    TestApp {
        api: Api::new(&address.to_string()),
        identity,
        catalog,
        simulator,
        outboxes,
        sealer,
        stop: Some(stop),
        _data: data,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts an RFC 9457 problem with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.headers["content-type"], "application/problem+json", "{self:?}");
        assert_eq!(self.body["code"], code, "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert_eq!(self.body["type"], format!("urn:phoenix:problem:{code}"), "{self:?}");
        assert!(
            self.body["request_id"].is_string(),
            "problems carry the request id: {self:?}"
        );
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Api {
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    /// Polls `path` as `token` until `done` holds for the reply body (bounded: events are asynchronous).
    pub async fn until(&self, path: &str, token: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let reply = self.get(path, Some(token)).await;
            assert_eq!(reply.status, 200, "{path}: {reply:?}");
            if done(&reply.body) {
                return reply.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: never happened; last {:?}",
                reply.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// GETs `path` with `token` until the answer is the problem `status`/`code` (something that happens a moment
    /// after the request that causes it returned); fails after 60 s.
    pub async fn until_refused(&self, path: &str, token: &str, status: u16, code: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let reply = self.get(path, Some(token)).await;
            if reply.status == status && reply.body["code"] == code {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path}: never {status} {code}; last {reply:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn register(&self, email: &str) -> Value {
        let reply = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "name": "Test User"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body
    }

    /// Signs in; returns (access token, refresh token).
    pub async fn login(&self, email: &str) -> (String, String) {
        let reply = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        (
            reply.body["access_token"].as_str().unwrap().to_owned(),
            reply.body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// A signed-in customer: (user id, access token).
    pub async fn customer(&self, email: &str) -> (String, String) {
        let user = self.register(email).await;
        let (token, _) = self.login(email).await;
        (user["id"].as_str().unwrap().to_owned(), token)
    }

    /// A signed-in member of support staff, given the role by `admin`: their token.
    pub async fn support(&self, admin: &str, email: &str) -> String {
        let user = self.register(email).await;
        let path = format!("/api/v1/admin/users/{}/roles", user["id"].as_str().unwrap());
        let set = self
            .call(Method::PUT, &path, Some(admin), Some(json!({"roles": ["support"]})))
            .await;
        assert_eq!(set.status, 200, "{set:?}");
        self.login(email).await.0
    }

    /// An operator of a new organization of `kind` (`airline`, `hotel_chain`): (organization id, token).
    pub async fn operator(&self, admin: &str, email: &str, kind: &str) -> (String, String) {
        let org = self
            .post(
                "/api/v1/admin/organizations",
                Some(admin),
                json!({"name": format!("{kind} {email}"), "kind": kind}),
            )
            .await;
        assert_eq!(org.status, 201, "{org:?}");
        let org_id = org.body["id"].as_str().unwrap().to_owned();
        let user = self.register(email).await;
        let path = format!("/api/v1/admin/users/{}/roles", user["id"].as_str().unwrap());
        let set = self
            .call(
                Method::PUT,
                &path,
                Some(admin),
                Some(json!({"roles": ["operator"], "organization_id": org_id})),
            )
            .await;
        assert_eq!(set.status, 200, "{set:?}");
        (org_id, self.login(email).await.0)
    }

    /// A signed-in agent of a new agency: its token.
    pub async fn agent(&self, admin: &str, email: &str) -> String {
        let org = self
            .post(
                "/api/v1/admin/organizations",
                Some(admin),
                json!({"name": format!("Agency {email}"), "kind": "agency"}),
            )
            .await;
        assert_eq!(org.status, 201, "{org:?}");
        let user = self.register(email).await;
        let path = format!("/api/v1/admin/users/{}/roles", user["id"].as_str().unwrap());
        let set = self
            .call(
                Method::PUT,
                &path,
                Some(admin),
                Some(json!({"roles": ["agent"], "organization_id": org.body["id"]})),
            )
            .await;
        assert_eq!(set.status, 200, "{set:?}");
        self.login(email).await.0
    }
}

impl TestApp {
    /// The simulated card provider of this app.
    pub fn simulator(&self) -> &phoenix_payment::Simulator {
        self.simulator
            .as_ref()
            .expect("payment runs here on the simulated provider")
    }

    /// A signed-in admin, bootstrapped the way `phoenix user create` does it.
    pub async fn admin(&self) -> String {
        let email = create_admin(self.identity.as_ref().expect("identity runs in this app")).await;
        self.login(&email).await.0
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply { status, headers, body }
}

/// Creates an admin directly in identity (as `phoenix user create` does); returns the email.
pub async fn create_admin(identity: &phoenix_identity::Service) -> String {
    let email = format!("admin-{}@example.com", uuid::Uuid::new_v4().simple());
    identity
        .create_user(phoenix_identity::NewUser {
            email: &email,
            password: PASSWORD,
            name: "Admin",
            roles: &[phoenix_api::Role::Admin],
            organization_id: None,
        })
        .await
        .unwrap();
    email
}

/// A PostgreSQL URL for a whole app: each service's database (`<name>_<service>`) is dropped when this is.
pub struct PostgresDatabases {
    name: String,
    pub url: String,
}

impl PostgresDatabases {
    pub fn new() -> PostgresDatabases {
        let name = format!("phoenix_test_{}", uuid::Uuid::new_v4().simple());
        let url = phoenix_db::testing::TestDatabase::postgres_url_for(&name);
        PostgresDatabases { name, url }
    }
}

impl Drop for PostgresDatabases {
    fn drop(&mut self) {
        for service in [
            "identity",
            "inventory",
            "catalog",
            "booking",
            "payment",
            "payment_simulator",
            "saga",
            "notification",
            "audit",
        ] {
            phoenix_db::testing::drop_postgres_database(&format!("{}_{service}", self.name));
        }
    }
}

impl Api {
    /// A POST with an `Idempotency-Key`.
    pub async fn post_keyed(&self, path: &str, token: Option<&str>, key: &str, body: Value) -> Reply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("idempotency-key", key)
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }
}

/// A NATS server with JetStream on its own port and store, for one test alone: killed and restarted at will.
pub struct NatsServer {
    child: Option<std::process::Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut server = NatsServer {
            child: None,
            port,
            store: tempfile::tempdir().expect("store"),
        };
        server.run();
        server
    }

    pub fn run(&mut self) {
        let binary = std::env::var("PHOENIX_TEST_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned());
        let child = std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
