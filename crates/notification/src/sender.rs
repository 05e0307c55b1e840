//! The transports: SMTP (lettre), an HTTP SMS provider, and webhook calls (reqwest). Built once from the options;
//! each send is bounded by `send_timeout_ms`. Errors are kept free of credentials and URLs (a URL may carry a
//! token) before they reach the delivery log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use phoenix_api::ErrorChain;
use serde_json::json;

use crate::options::{Options, SmsOptions, SmtpOptions, SmtpTls};
use crate::store::Status;
use crate::template::Rendered;
use crate::{Error, webhook};

/// A send that worked: delivered (or only logged), with the server's answer code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub status: Status,
    pub response_code: Option<u16>,
}

/// A send that did not work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub response_code: Option<u16>,
    /// Retrying cannot help (a malformed address, a permanent SMTP refusal, 410 Gone).
    pub permanent: bool,
    /// The receiver says the endpoint is gone for good (HTTP 410): disable it.
    pub gone: bool,
}

impl Failure {
    fn retry(error: impl Into<String>, response_code: Option<u16>) -> Failure {
        Failure {
            error: error.into(),
            response_code,
            permanent: false,
            gone: false,
        }
    }

    fn permanent(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            response_code: None,
            permanent: true,
            gone: false,
        }
    }
}

/// Every transport of the service.
pub(crate) struct Senders {
    email: Email,
    sms: Option<Sms>,
    /// For the SMS provider, which the operator configures.
    http: reqwest::Client,
    /// For webhooks, which partners register: unless every private target is allowed, it resolves names to the
    /// addresses `targets` allows only (`Allowed`), and `webhook` refuses a URL that names another literally.
    webhooks: reqwest::Client,
    targets: Arc<webhook::Targets>,
}

enum Email {
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
    },
    /// No SMTP configured: the message is written to the log, not sent.
    Log,
}

struct Sms {
    options: SmsOptions,
}

impl Senders {
    pub(crate) fn new(options: &Options) -> Result<Senders, Error> {
        let email = match &options.smtp {
            Some(smtp) => smtp_transport(smtp, options.send_timeout())?,
            None => Email::Log,
        };
        let builder = || {
            reqwest::Client::builder()
                .timeout(options.send_timeout())
                .connect_timeout(options.send_timeout().min(Duration::from_secs(5)))
                // A webhook answers where it was registered; following redirects would let it point us elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("phoenix-notifications/1")
        };
        let built = |result: reqwest::Result<reqwest::Client>| {
            result.map_err(|e| Error::Config {
                reason: format!("http client: {e}"),
            })
        };
        let http = built(builder().build())?;
        let targets = Arc::new(webhook::Targets::of(options));
        let webhooks = if targets.any_private {
            http.clone()
        } else {
            built(builder().dns_resolver(Arc::new(Allowed(targets.clone()))).build())?
        };
        Ok(Senders {
            email,
            sms: options.sms.clone().map(|options| Sms { options }),
            http,
            webhooks,
            targets,
        })
    }

    pub(crate) async fn email(&self, to: &str, message: &Rendered) -> Result<Sent, Failure> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| Failure::permanent("the recipient is not an email address"))?;
        let (subject, html) = match (&message.subject, &message.html) {
            (Some(subject), Some(html)) => (subject.clone(), html.clone()),
            _ => return Err(Failure::permanent("the email template lacks a subject or html part")),
        };
        match &self.email {
            Email::Log => {
                tracing::info!(to = %crate::http::mask_email(to.email.as_ref()), subject = %subject,
                    "email not sent (no SMTP configured): logged");
                Ok(Sent {
                    status: Status::Logged,
                    response_code: None,
                })
            }
            Email::Smtp { transport, from } => {
                let email = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(subject)
                    .multipart(MultiPart::alternative_plain_html(message.text.clone(), html))
                    .map_err(|e| Failure::permanent(format!("building the email: {e}")))?;
                match transport.send(email).await {
                    Ok(response) => Ok(Sent {
                        status: Status::Delivered,
                        response_code: response.code().to_string().parse().ok(),
                    }),
                    Err(e) => {
                        let code = e.status().and_then(|c| c.to_string().parse().ok());
                        let failure = Failure::retry(format!("smtp: {e}"), code);
                        Err(Failure {
                            permanent: e.is_permanent(),
                            ..failure
                        })
                    }
                }
            }
        }
    }

    /// Whether SMS can be sent at all.
    pub(crate) fn sms_enabled(&self) -> bool {
        self.sms.is_some()
    }

    pub(crate) async fn sms(&self, to: &str, body: &str) -> Result<Sent, Failure> {
        let Some(sms) = &self.sms else {
            return Err(Failure::permanent("no SMS provider is configured"));
        };
        let mut request = json!({ "to": to, "body": body });
        if let Some(from) = &sms.options.from {
            request["from"] = json!(from);
        }
        let response = self
            .http
            .post(&sms.options.base_url)
            .bearer_auth(&sms.options.api_key)
            .json(&request)
            .send()
            .await
            .map_err(|e| Failure::retry(format!("sms provider: {}", e.without_url()), None))?;
        http_outcome(response.status(), "sms provider")
    }

    pub(crate) async fn webhook(
        &self,
        url: &str,
        secret: &str,
        message_id: &str,
        timestamp: i64,
        body: Vec<u8>,
    ) -> Result<Sent, Failure> {
        let signature = webhook::sign(secret, message_id, timestamp, &body)
            .ok_or_else(|| Failure::permanent("the endpoint's secret is not valid"))?;
        // Registered before private targets were refused, or stored by hand: the same rule as registration.
        if url::Url::parse(url)
            .ok()
            .and_then(|u| webhook::literal_ip(&u))
            .is_some_and(|ip| !self.targets.allow(ip))
        {
            return Err(Failure::permanent(format!("endpoint {}", webhook::PRIVATE_TARGET)));
        }
        let response = self
            .webhooks
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            // With its causes: reqwest's own message leaves out why a connection failed.
            .map_err(|e| Failure::retry(format!("endpoint: {}", ErrorChain(&e.without_url())), None))?;
        http_outcome(response.status(), "endpoint")
    }
}

/// Resolves a webhook's host name to its public addresses only; a name with none is an error, so the call is never
/// made (and retried later, in case the name changes).
/// Resolves a webhook's host name to the addresses webhooks may call only.
struct Allowed(Arc<webhook::Targets>);

impl reqwest::dns::Resolve for Allowed {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let targets = self.0.clone();
        Box::pin(async move {
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| targets.allow(address.ip()))
                .collect();
            if allowed.is_empty() {
                let which = if targets.networks.is_empty() {
                    "public"
                } else {
                    "public or allowed"
                };
                return Err(format!("{host} has no {which} address").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn http_outcome(status: reqwest::StatusCode, who: &str) -> Result<Sent, Failure> {
    let code = Some(status.as_u16());
    if status.is_success() {
        Ok(Sent {
            status: Status::Delivered,
            response_code: code,
        })
    } else if status == reqwest::StatusCode::GONE {
        Err(Failure {
            error: format!("{who} answered 410 Gone"),
            response_code: code,
            permanent: true,
            gone: true,
        })
    } else {
        Err(Failure::retry(format!("{who} answered {}", status.as_u16()), code))
    }
}

fn smtp_transport(smtp: &SmtpOptions, timeout: Duration) -> Result<Email, Error> {
    let config = |e: lettre::transport::smtp::Error| Error::Config {
        reason: format!("smtp: {e}"),
    };
    let builder = match smtp.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(config)?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(config)?,
    };
    let mut builder = builder.port(smtp.port).timeout(Some(timeout));
    if let (Some(username), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
    }
    let from = smtp.from.parse().map_err(|_| Error::Config {
        reason: "smtp.from must be an email address".to_owned(),
    })?;
    Ok(Email::Smtp {
        transport: Box::new(builder.build()),
        from,
    })
}
