//! The Kubernetes manifests in `deploy/kubernetes`, checked against the binary they run: every role has a
//! Deployment, a Service and probes on routes that exist, the addresses the roles are given are the Services'
//! own, and the environment each Deployment gives its container (ConfigMap, values, Secret keys) starts that role
//! as its own process: nine of them, on PostgreSQL and NATS JetStream, serve a booking end to end through the
//! gateway, its email, audit entries and analytics included.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use phoenix::config::Role;
use phoenix_notification::testing::SmtpServer;
use serde::Deserialize;
use serde_json::Value;

use crate::common::{PostgresDatabases, TestApp, create_admin, spawn_on};

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// Every object of every file the kustomization lists, with the file it came from.
struct Manifests {
    objects: Vec<(String, Value)>,
}

impl Manifests {
    fn load() -> Manifests {
        let dir = manifests_dir();
        let kustomization = read_yaml(&dir.join("kustomization.yaml"));
        assert_eq!(kustomization.len(), 1);
        let listed: Vec<String> = kustomization[0]["resources"]
            .as_array()
            .expect("the kustomization lists its resources")
            .iter()
            .map(|file| file.as_str().expect("a file name").to_owned())
            .collect();
        let present: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("deploy/kubernetes")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
            .collect();
        assert_eq!(
            listed.iter().cloned().collect::<BTreeSet<_>>(),
            present,
            "every manifest is in the kustomization, and the kustomization names only manifests that exist"
        );
        let objects = listed
            .iter()
            .flat_map(|file| {
                read_yaml(&dir.join(file))
                    .into_iter()
                    .map(move |object| (file.clone(), object))
            })
            .collect();
        Manifests { objects }
    }

    fn find(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .map(|(_, object)| object)
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name} in deploy/kubernetes"))
    }

    fn config_map(&self) -> HashMap<String, String> {
        strings(&self.find("ConfigMap", "phoenix")["data"])
    }

    fn container(&self, role: Role) -> &Value {
        let deployment = self.find("Deployment", &format!("phoenix-{}", role.name()));
        let containers = deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers");
        assert_eq!(containers.len(), 1, "{role:?}: one container");
        &containers[0]
    }

    /// What the container's process finds in its environment: the ConfigMaps it takes whole, then its own
    /// entries, Secret keys resolved from `secrets` (a key the Secret lacks is left out only if optional).
    fn environment(&self, role: Role, secrets: &HashMap<&str, String>) -> HashMap<String, String> {
        let container = self.container(role);
        let mut env = HashMap::new();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let name = source["configMapRef"]["name"]
                .as_str()
                .expect("only ConfigMaps are taken whole");
            env.extend(strings(&self.find("ConfigMap", name)["data"]));
        }
        for entry in container["env"].as_array().expect("env") {
            let name = entry["name"].as_str().expect("name").to_owned();
            if let Some(value) = entry.get("value") {
                env.insert(name, value.as_str().expect("values are strings").to_owned());
                continue;
            }
            let reference = &entry["valueFrom"]["secretKeyRef"];
            assert_eq!(
                reference["name"], "phoenix",
                "{role:?}: {name} comes from the phoenix Secret"
            );
            let key = reference["key"].as_str().expect("key");
            match secrets.get(key) {
                Some(value) => {
                    env.insert(name, value.clone());
                }
                None => assert_eq!(
                    reference["optional"], true,
                    "{role:?}: {name} needs the Secret key {key}, which docs/deploy.md does not list"
                ),
            }
        }
        env
    }
}

fn read_yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|object| !object.is_null())
        .collect()
}

fn strings(map: &Value) -> HashMap<String, String> {
    map.as_object()
        .expect("a map")
        .iter()
        .map(|(key, value)| {
            let value = value
                .as_str()
                .unwrap_or_else(|| panic!("{key}: ConfigMap values are strings"));
            (key.clone(), value.to_owned())
        })
        .collect()
}

fn service_name(role: Role) -> String {
    format!("phoenix-{}", role.name())
}

/// The Secret's keys docs/deploy.md lists, with test values; the optional ones are left out.
fn secrets(database_url: &str, redis_url: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("database-url", database_url.to_owned()),
        ("redis-url", redis_url.to_owned()),
        ("internal-token", uuid::Uuid::new_v4().simple().to_string().repeat(2)),
        ("secrets-key", crate::process::SECRETS_KEY.to_owned()),
        ("offer-signing-key", uuid::Uuid::new_v4().simple().to_string().repeat(2)),
        ("stripe-secret-key", "sk_test_phoenix".to_owned()),
    ])
}

#[test]
fn every_role_has_a_deployment_a_service_and_probes_phoenix_serves() {
    let manifests = Manifests::load();
    let shared = manifests.config_map();
    let listen: std::net::SocketAddr = shared["PHOENIX_LISTEN"].parse().expect("PHOENIX_LISTEN");
    for role in Role::ALL {
        let container = manifests.container(role);
        let env = manifests.environment(role, &secrets("postgres://db/phoenix", "redis://redis"));
        assert_eq!(env["PHOENIX_ROLES"], role.name(), "{role:?} runs only itself");
        assert_eq!(container["args"], serde_json::json!(["serve"]), "{role:?}");
        assert_eq!(
            container["image"], "phoenix",
            "{role:?}: the image the kustomization names"
        );

        // The container's port is the one phoenix listens on, and the probes ask routes it serves.
        let port = &container["ports"][0];
        assert_eq!(
            (port["name"].as_str(), port["containerPort"].as_u64()),
            (Some("http"), Some(u64::from(listen.port())))
        );
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{role:?}: {probe}");
            assert_eq!(container[probe]["httpGet"]["port"], "http", "{role:?}: {probe}");
        }

        // Stopping: Kubernetes waits longer than the pause before SIGTERM plus phoenix's own grace.
        let pod = &manifests.find("Deployment", &service_name(role))["spec"]["template"];
        let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .expect("pre-stop pause");
        let grace: u64 = shared["PHOENIX_SHUTDOWN_GRACE_SECS"].parse().expect("grace");
        let allowed = pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("termination grace");
        assert!(
            allowed > pause + grace,
            "{role:?}: {allowed} s <= {pause} s + {grace} s"
        );

        // The Service selects exactly this role's pods, on the container's port.
        let service = manifests.find("Service", &service_name(role));
        let selector = service["spec"]["selector"].as_object().expect("selector");
        for (label, value) in selector {
            assert_eq!(
                &pod["metadata"]["labels"][label], value,
                "{role:?}: the Service selects its pods"
            );
        }
        assert_eq!(selector["app.kubernetes.io/component"], role.name());
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");

        // The address the other roles are given is this Service's.
        if role != Role::Gateway {
            let key = format!("PHOENIX_SERVICES__{}", role.name().to_uppercase());
            let service_port = service["spec"]["ports"][0]["port"].as_u64().expect("port");
            assert_eq!(
                shared[&key],
                format!("http://{}:{service_port}", service_name(role)),
                "{key}"
            );
        }

        // What the role's environment says is a configuration phoenix accepts, for this role alone.
        let config = phoenix::Config::load_from(None, env).unwrap_or_else(|e| panic!("{role:?}: {e:#}"));
        assert_eq!(config.local_roles(), [role]);
        assert!(
            config.internal_token.is_some(),
            "{role:?}: roles apart need the internal token"
        );
        if role != Role::Gateway {
            assert!(config.database_url.is_some(), "{role:?} keeps its data on PostgreSQL");
        }
        // Secrets go only where they are used.
        assert_eq!(
            config.secrets_key.is_some(),
            matches!(role, Role::Identity | Role::Notification),
            "{role:?}: secrets_key"
        );
        assert_eq!(
            config.offer_signing_key.is_some(),
            role == Role::Catalog,
            "{role:?}: offer_signing_key"
        );
        assert_eq!(
            config.redis_url.is_some(),
            matches!(role, Role::Gateway | Role::Identity),
            "{role:?}: redis_url"
        );
        if config.secrets_key.is_some() {
            config.sealer().unwrap_or_else(|e| panic!("{role:?}: {e:#}"));
        }
    }
    // The gateway's replicas are its autoscaler's, which must aim at it.
    let autoscaler = manifests.find("HorizontalPodAutoscaler", "phoenix-gateway");
    assert_eq!(autoscaler["spec"]["scaleTargetRef"]["name"], "phoenix-gateway");
    assert!(
        manifests.find("Deployment", "phoenix-gateway")["spec"]
            .get("replicas")
            .is_none()
    );
    let ingress = manifests.find("Ingress", "phoenix");
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], service_name(Role::Gateway));
}

/// The gateway reads `X-Forwarded-For` only from the proxies it is given, and its network policy admits only the
/// ingress controller's namespace (and Prometheus's): no pod can reach it directly and pick the address its rate
/// limits count. Every other role's policy admits only Phoenix's pods and Prometheus.
#[test]
fn the_gateway_is_reached_only_through_the_ingress_whose_forwarding_it_trusts() {
    let manifests = Manifests::load();
    let env = manifests.environment(Role::Gateway, &secrets("postgres://db/phoenix", "redis://redis"));
    let config = phoenix::Config::load_from(None, env).expect("the gateway's environment");
    assert!(
        !config.gateway.trusted_proxies.is_empty(),
        "the ingress controller appends the client's address; the gateway must know it may read it"
    );
    let namespaces = |policy: &Value| -> BTreeSet<String> {
        let rules = policy["spec"]["ingress"].as_array().expect("ingress rules");
        rules
            .iter()
            .flat_map(|rule| {
                rule["from"]
                    .as_array()
                    .unwrap_or_else(|| panic!("a rule without `from` admits every pod: {rule}"))
                    .iter()
                    .filter_map(|peer| peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as_str())
                    .map(str::to_owned)
            })
            .collect()
    };
    let gateway = manifests.find("NetworkPolicy", "phoenix-gateway");
    assert_eq!(
        gateway["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "gateway"
    );
    assert_eq!(
        namespaces(gateway),
        BTreeSet::from(["ingress-nginx".to_owned(), "monitoring".to_owned()])
    );
    let internal = manifests.find("NetworkPolicy", "phoenix-internal");
    assert_eq!(namespaces(internal), BTreeSet::from(["monitoring".to_owned()]));
}

/// Each role started from its Deployment's environment, as its own app on its own port, on one PostgreSQL server
/// and one NATS server. The test changes only what differs between a cluster and this machine: the addresses of
/// PostgreSQL, NATS, Redis, the SMTP server and the other roles, the Secret's values, NATS stream replicas (one
/// server here) and names (unique per run), and the payment provider (the simulator: no card network here); and it
/// lifts the gateway's per-user rate limit, as it polls faster than any user, and lets a booking request wait for
/// its saga longer than the default three seconds, as this machine runs other tests beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_run_a_booking_end_to_end_on_postgres_and_nats() {
    let manifests = Manifests::load();
    let databases = PostgresDatabases::new();
    let smtp = SmtpServer::start().await;
    let redis = std::env::var("PHOENIX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let nats = crate::common::nats_url();
    let secrets = secrets(&databases.url, &redis);
    let tag = uuid::Uuid::new_v4().simple().to_string();

    let mut listeners = HashMap::new();
    for role in Role::ALL {
        listeners.insert(role, tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let address = |role: Role| format!("http://{}", listeners[&role].local_addr().expect("address"));
    let cluster_address: HashMap<String, String> = Role::ALL
        .into_iter()
        .map(|role| (format!("http://{}:8080", service_name(role)), address(role)))
        .collect();

    // Each role after those it calls while starting; the gateway, which needs them all, last.
    let order = [
        Role::Identity,
        Role::Inventory,
        Role::Catalog,
        Role::Payment,
        Role::Booking,
        Role::Saga,
        Role::Notification,
        Role::Audit,
        Role::Gateway,
    ];
    let mut apps: HashMap<Role, TestApp> = HashMap::new();
    for role in order {
        let mut env = manifests.environment(role, &secrets);
        for value in env.values_mut() {
            if let Some(local) = cluster_address.get(value.as_str()) {
                *value = local.clone();
            }
        }
        if env.remove("PHOENIX_PAYMENT_PROVIDER__KIND").is_some() {
            env.retain(|key, _| !key.starts_with("PHOENIX_PAYMENT_PROVIDER__"));
            env.insert("PHOENIX_PAYMENT_PROVIDER__KIND".into(), "simulated".into());
        }
        if env.contains_key("PHOENIX_NOTIFICATION__SMTP__HOST") {
            env.insert("PHOENIX_NOTIFICATION__SMTP__HOST".into(), "127.0.0.1".into());
            env.insert("PHOENIX_NOTIFICATION__SMTP__PORT".into(), smtp.port.to_string());
            env.insert("PHOENIX_NOTIFICATION__SMTP__TLS".into(), "none".into());
        }
        env.insert("PHOENIX_BUS__URL".into(), nats.clone());
        env.insert("PHOENIX_BUS__REPLICAS".into(), "1".into());
        env.insert("PHOENIX_BUS__MAX_AGE_HOURS".into(), "1".into());
        env.insert("PHOENIX_BUS__SUBJECT_PREFIX".into(), format!("k{tag}"));
        env.insert("PHOENIX_BUS__STREAM_PREFIX".into(), format!("K{}", tag.to_uppercase()));
        env.insert("PHOENIX_GATEWAY__RATE_LIMIT_PER_USER_PER_MIN".into(), "100000".into());
        env.insert("PHOENIX_BOOKING__CONFIRM_WAIT_MS".into(), "30000".into());
        let config = phoenix::Config::load_from(None, env).unwrap_or_else(|e| panic!("{role:?}: {e:#}"));
        let listener = listeners.remove(&role).expect("listener");
        apps.insert(role, spawn_on(config, listener).await);
    }

    let identity = apps[&Role::Identity]
        .identity
        .as_ref()
        .expect("identity runs in its own app");
    let gateway = &apps[&Role::Gateway];
    assert!(
        gateway.identity.is_none() && gateway.catalog.is_none(),
        "the gateway runs alone"
    );
    let ready = gateway.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    let (admin, _) = gateway.login(&create_admin(identity).await).await;
    crate::events::a_booking_reaches_audit_analytics_and_the_customers_inbox(gateway, admin, &smtp).await;
}
