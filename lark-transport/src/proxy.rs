//! HTTP proxies: [`Proxy`] settings, and the connector that opens a `CONNECT` tunnel through the
//! proxy before TLS (so the platform's certificate is checked end to end, as without a proxy).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use lark_types::{BoxError, ConfigError, LarkError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::Service;

/// The longest proxy reply head read for a `CONNECT`.
const MAX_CONNECT_REPLY: usize = 16 * 1024;

/// Which HTTP proxy, if any, connections go through.
///
/// Connections are tunnelled with `CONNECT host:port`, then TLS runs inside the tunnel for
/// `https` hosts (all of the platform's): the proxy sees the host name, never the requests.
/// Plain `http` hosts are tunnelled the same way, without TLS, so the proxy sees their requests,
/// and proxies that allow `CONNECT` only to port 443 (Squid's default) refuse them.
/// Only `http://` proxies are supported; credentials in the proxy URL
/// (`http://user:password@proxy:3128`, percent-encoded) are sent as `Proxy-Authorization: Basic`
/// and never shown by `Debug` or in errors.
///
/// [`HttpClientBuilder`](crate::HttpClientBuilder) uses [`Proxy::from_env`] unless told
/// otherwise.
#[derive(Clone, Default)]
pub struct Proxy {
    https: Option<Arc<ProxyServer>>,
    http: Option<Arc<ProxyServer>>,
    no_proxy: Vec<NoProxyEntry>,
    /// Loopback hosts never go through the proxy (as with Go's `ProxyFromEnvironment`).
    skip_loopback: bool,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("https", &self.https)
            .field("http", &self.http)
            .field("no_proxy", &self.no_proxy.len())
            .field("skip_loopback", &self.skip_loopback)
            .finish()
    }
}

/// One proxy server: where it is and the `Proxy-Authorization` value, if any.
struct ProxyServer {
    authority: Authority,
    authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The authority was rebuilt as `host:port`, without user info.
        let credentials = if self.authorization.is_some() { "<redacted>" } else { "none" };
        write!(f, "http://{} (credentials: {credentials})", self.authority)
    }
}

/// A `NO_PROXY` entry.
#[derive(Clone, Debug)]
enum NoProxyEntry {
    /// `*`: no host goes through the proxy.
    All,
    /// An IP address.
    Ip(IpAddr),
    /// A domain: the host itself and its subdomains.
    Domain(String),
    /// A CIDR range: addresses whose first `bits` bits are those of the network address.
    Cidr(IpAddr, u8),
}

/// Whether `ip` lies in `network/bits` (never across address families).
fn in_range(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits.min(32))).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits.min(128))).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

fn config_error(what: String) -> LarkError {
    LarkError::Config(ConfigError::new(what))
}

impl Proxy {
    /// No proxy: every connection goes straight to its host.
    pub fn none() -> Proxy {
        Proxy::default()
    }

    /// Every connection (to `https` and `http` hosts) through the proxy at `url`
    /// (`http://[user:password@]host[:port]`, port 80 when left out). Loopback hosts too, unless
    /// listed in [`no_proxy`](Self::no_proxy).
    pub fn all(url: &str) -> Result<Proxy, LarkError> {
        let server =
            Arc::new(ProxyServer::parse(url).map_err(|why| config_error(format!("proxy URL: {why}")))?);
        Ok(Proxy {
            https: Some(server.clone()),
            http: Some(server),
            no_proxy: Vec::new(),
            skip_loopback: false,
        })
    }

    /// The proxy the environment names, read as curl reads it: `HTTPS_PROXY` for `https` hosts,
    /// `HTTP_PROXY` for `http` hosts, `ALL_PROXY` for either when its own is unset (lower-case
    /// names too, checked first), `NO_PROXY` for hosts that go straight (see
    /// [`no_proxy`](Self::no_proxy)). Unlike curl, a proxy URL without a port means port 80.
    /// (Go's `ProxyFromEnvironment` differs: upper-case first, no `ALL_PROXY`, and `.example.com`
    /// matching subdomains only.) Loopback hosts never use it. Nothing set: no proxy. A variable
    /// naming another kind of proxy (`socks5://`, `https://`) is skipped with a warning; a value
    /// that is not a usable URL is a `ConfigError` naming the variable (not its value: it may
    /// hold a password).
    pub fn from_env() -> Result<Proxy, LarkError> {
        Proxy::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Proxy, LarkError> {
        let read = |names: [&'static str; 2]| {
            names.into_iter().find_map(|name| var(name).filter(|v| !v.trim().is_empty()).map(|v| (name, v)))
        };
        let server = |found: Option<(&'static str, String)>| -> Result<Option<Arc<ProxyServer>>, LarkError> {
            let Some((name, value)) = found else { return Ok(None) };
            // Set for other programs too (a SOCKS proxy for a desktop, say): skipped, not fatal.
            if let Some((scheme, _)) = value.trim().split_once("://") {
                if !scheme.eq_ignore_ascii_case("http") {
                    tracing::warn!(target: "lark::transport", variable = name, scheme, "proxy variable ignored: only http:// proxies are supported");
                    return Ok(None);
                }
            }
            let parsed =
                ProxyServer::parse(value.trim()).map_err(|why| config_error(format!("{name}: {why}")))?;
            Ok(Some(Arc::new(parsed)))
        };
        let all = server(read(["all_proxy", "ALL_PROXY"]))?;
        let https = server(read(["https_proxy", "HTTPS_PROXY"]))?.or_else(|| all.clone());
        let http = server(read(["http_proxy", "HTTP_PROXY"]))?.or(all);
        let no_proxy = read(["no_proxy", "NO_PROXY"]).map(|(_, v)| parse_no_proxy(&v)).unwrap_or_default();
        Ok(Proxy { https, http, no_proxy, skip_loopback: true })
    }

    /// Hosts that go straight, in `NO_PROXY` syntax: comma-separated domains (each matching
    /// itself and its subdomains; a leading `.` or `*.` is ignored), IP addresses, CIDR ranges
    /// (`10.0.0.0/8`, `fd00::/8`), or `*` for all. A port after a host is ignored. Adds to the
    /// hosts already excluded.
    pub fn no_proxy(mut self, list: &str) -> Proxy {
        self.no_proxy.extend(parse_no_proxy(list));
        self
    }

    /// Whether any connection can go through a proxy.
    pub(crate) fn is_some(&self) -> bool {
        self.https.is_some() || self.http.is_some()
    }

    /// The proxy for a connection to `uri`, if it goes through one.
    fn for_uri(&self, uri: &Uri) -> Option<&ProxyServer> {
        self.for_host(uri.scheme() == Some(&Scheme::HTTPS), uri.host()?)
    }

    /// A TCP connection to `host:port`, straight or through a `CONNECT` tunnel of the proxy
    /// these settings pick for it (`secure`: the host is reached over TLS, as `https`/`wss`; the
    /// caller runs TLS on the stream). For connections outside [`HttpClient`](crate::HttpClient),
    /// such as the long connection's WebSocket. The error never shows proxy credentials.
    pub async fn connect_tcp(&self, secure: bool, host: &str, port: u16) -> Result<TcpStream, BoxError> {
        let target = host_port(host, port);
        let Some(server) = self.for_host(secure, host) else {
            return Ok(TcpStream::connect(target).await?);
        };
        // The authority is `host:port`, IPv6 hosts in brackets: a socket address string as is.
        let mut stream = TcpStream::connect(server.authority.as_str())
            .await
            .map_err(|e| -> BoxError { format!("cannot connect to the proxy: {e}").into() })?;
        open_tunnel(&mut stream, &target, server.authorization.as_ref()).await?;
        Ok(stream)
    }

    /// The proxy for a connection to `host`, if it goes through one.
    fn for_host(&self, secure: bool, host: &str) -> Option<&ProxyServer> {
        let server = if secure { &self.https } else { &self.http };
        let server = server.as_deref()?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        if self.skip_loopback && (host == "localhost" || ip.is_some_and(|ip| ip.is_loopback())) {
            return None;
        }
        let excluded = self.no_proxy.iter().any(|entry| match entry {
            NoProxyEntry::All => true,
            NoProxyEntry::Ip(a) => ip == Some(*a),
            NoProxyEntry::Cidr(net, bits) => ip.is_some_and(|ip| in_range(ip, *net, *bits)),
            NoProxyEntry::Domain(d) => {
                host == *d || host.strip_suffix(d.as_str()).is_some_and(|s| s.ends_with('.'))
            }
        });
        (!excluded).then_some(server)
    }
}

fn parse_no_proxy(list: &str) -> Vec<NoProxyEntry> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            if entry == "*" {
                return NoProxyEntry::All;
            }
            if let Some((net, bits)) = entry.split_once('/') {
                let net = net.trim_start_matches('[').trim_end_matches(']');
                if let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u8>()) {
                    let max = if net.is_ipv4() { 32 } else { 128 };
                    if bits <= max {
                        return NoProxyEntry::Cidr(net, bits);
                    }
                }
            }
            let bare = entry.trim_start_matches('[');
            if let Some((ip, _)) = bare.split_once(']') {
                if let Ok(ip) = ip.parse() {
                    return NoProxyEntry::Ip(ip);
                }
            }
            if let Ok(ip) = entry.parse() {
                return NoProxyEntry::Ip(ip);
            }
            let host = entry.rsplit_once(':').map_or(entry, |(h, _)| h);
            if let Ok(ip) = host.parse() {
                return NoProxyEntry::Ip(ip);
            }
            NoProxyEntry::Domain(host.trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase())
        })
        .collect()
}

impl ProxyServer {
    /// Parses `http://[user:password@]host[:port][/]`. The error never includes the URL.
    fn parse(url: &str) -> Result<ProxyServer, String> {
        // A bare `host:port` (as some tools accept) is taken as http.
        let with_scheme = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
        let uri: Uri = with_scheme.parse().map_err(|_| "not a URL".to_owned())?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "unsupported proxy scheme `{other}` (only http:// proxies are supported)"
                ))
            }
            None => return Err("not a URL".to_owned()),
        }
        let authority = uri.authority().ok_or_else(|| "no proxy host".to_owned())?;
        if authority.host().is_empty() {
            return Err("no proxy host".to_owned());
        }
        let (userinfo, _) = authority.as_str().rsplit_once('@').unzip();
        let authorization = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode =
                    |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().map(|s| s.into_owned());
                let (user, password) = match (decode(user), decode(password)) {
                    (Ok(u), Ok(p)) => (u, p),
                    _ => return Err("proxy credentials are not valid percent-encoded UTF-8".to_owned()),
                };
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let mut value = HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| "proxy credentials cannot be sent".to_owned())?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        // `port()` is `None` for a port that is empty or not a u16: not "no port" then.
        let after_host =
            authority.as_str().rsplit('@').next().and_then(|rest| rest.strip_prefix(authority.host()));
        let port = match (authority.port_u16(), after_host) {
            (Some(port), _) => port,
            (None, Some("") | None) => 80,
            (None, Some(_)) => return Err("invalid proxy port".to_owned()),
        };
        let authority =
            format!("{}:{port}", authority.host()).parse().map_err(|_| "invalid proxy host".to_owned())?;
        Ok(ProxyServer { authority, authorization })
    }
}

/// TCP connections, straight or through a `CONNECT` tunnel of the configured proxy; TLS (by
/// hyper-rustls) runs on top.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    http: HttpConnector,
    proxy: Proxy,
}

impl ProxyConnector {
    pub(crate) fn new(http: HttpConnector, proxy: Proxy) -> ProxyConnector {
        ProxyConnector { http, proxy }
    }
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> ConnectFuture {
        let Some(server) = self.proxy.for_uri(&dst) else {
            let connecting = self.http.call(dst);
            return Box::pin(async move { connecting.await.map_err(Into::into) });
        };
        let proxy_uri =
            Uri::builder().scheme("http").authority(server.authority.clone()).path_and_query("/").build();
        let authorization = server.authorization.clone();
        let mut http = self.http.clone();
        Box::pin(async move {
            let proxy_uri = proxy_uri.map_err(|e| -> BoxError { Box::new(e) })?;
            let target = tunnel_target(&dst)?;
            let mut io = http
                .call(proxy_uri)
                .await
                .map_err(|e| -> BoxError { format!("cannot connect to the proxy: {e}").into() })?;
            open_tunnel(io.inner_mut(), &target, authorization.as_ref()).await?;
            Ok(io)
        })
    }
}

/// `host:port` of a connection to `uri`.
fn tunnel_target(uri: &Uri) -> Result<String, BoxError> {
    let host = uri.host().ok_or("request URI has no host")?;
    let port = uri.port_u16().unwrap_or(if uri.scheme() == Some(&Scheme::HTTPS) { 443 } else { 80 });
    Ok(host_port(host, port))
}

/// `host:port`, an IPv6 host in brackets (given with or without them).
fn host_port(host: &str, port: u16) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    }
}

/// Asks the proxy on `stream` for a tunnel to `target`; succeeds on a 2xx reply.
async fn open_tunnel(
    stream: &mut TcpStream,
    target: &str,
    authorization: Option<&HeaderValue>,
) -> Result<(), BoxError> {
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(value) = authorization {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    stream.write_all(&head).await?;

    // Read byte by byte up to the end of the reply head: what follows belongs to the tunnel.
    let mut reply = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n\r\n") {
        if reply.len() >= MAX_CONNECT_REPLY {
            return Err(format!("the proxy's reply to CONNECT is over {MAX_CONNECT_REPLY} bytes").into());
        }
        if stream.read(&mut byte).await? == 0 {
            return Err("the proxy closed the connection before answering CONNECT".into());
        }
        reply.push(byte[0]);
    }
    let status_line = reply.split(|b| *b == b'\r').next().unwrap_or_default();
    let status = std::str::from_utf8(status_line)
        .ok()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(407) => Err("the proxy refused the tunnel: 407 Proxy Authentication Required".into()),
        Some(code) => Err(format!("the proxy refused the tunnel to {target}: HTTP {code}").into()),
        None => Err("the proxy's reply to CONNECT is not HTTP".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn via(proxy: &Proxy, uri: &str) -> Option<String> {
        proxy.for_uri(&uri.parse().unwrap()).map(|s| s.authority.to_string())
    }

    #[test]
    fn the_environment_picks_a_proxy_per_scheme() {
        let p =
            Proxy::from_vars(vars(&[("HTTPS_PROXY", "http://secure:3128"), ("http_proxy", "plain:8080")]))
                .unwrap();
        assert_eq!(via(&p, "https://open.feishu.cn/"), Some("secure:3128".into()));
        assert_eq!(via(&p, "http://example.com/"), Some("plain:8080".into()));
        let p = Proxy::from_vars(vars(&[("ALL_PROXY", "http://both")])).unwrap();
        assert_eq!(via(&p, "https://open.larksuite.com/"), Some("both:80".into()));
        assert_eq!(via(&p, "http://example.com/"), Some("both:80".into()));
        let p =
            Proxy::from_vars(vars(&[("https_proxy", "http://lower:1"), ("HTTPS_PROXY", "http://upper:2")]))
                .unwrap();
        assert_eq!(via(&p, "https://open.feishu.cn/"), Some("lower:1".into()));
        let p = Proxy::from_vars(vars(&[("HTTPS_PROXY", "  ")])).unwrap();
        assert!(!p.is_some());
    }

    #[test]
    fn no_proxy_and_loopback_go_straight() {
        let env = vars(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("NO_PROXY", " .internal.example, 10.0.0.7 ,[::2]:443, feishu.cn:443"),
        ]);
        let p = Proxy::from_vars(env).unwrap();
        for straight in [
            "https://127.0.0.1:9000/",
            "https://localhost/",
            "https://[::1]/",
            "https://internal.example/",
            "https://api.internal.example/",
            "https://10.0.0.7/",
            "https://[::2]/",
            "https://open.feishu.cn/",
        ] {
            assert_eq!(via(&p, straight), None, "{straight}");
        }
        for proxied in ["https://open.larksuite.com/", "https://notfeishu.cn/", "https://10.0.0.8/"] {
            assert_eq!(via(&p, proxied), Some("p:1".into()), "{proxied}");
        }
        let env = vars(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("NO_PROXY", "10.0.0.0/8, 192.168.1.0/24,fd00::/8, 1.2.3.4/40"),
        ]);
        let p = Proxy::from_vars(env).unwrap();
        for straight in ["https://10.200.3.4/", "https://192.168.1.77/", "https://[fd12::1]/"] {
            assert_eq!(via(&p, straight), None, "{straight}");
        }
        for proxied in ["https://11.0.0.1/", "https://192.168.2.1/", "https://[fe80::1]/", "https://1.2.3.4/"]
        {
            assert_eq!(via(&p, proxied), Some("p:1".into()), "{proxied}");
        }
        let p = Proxy::from_vars(vars(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "*")])).unwrap();
        assert_eq!(via(&p, "https://open.feishu.cn/"), None);
        // An explicit proxy applies to loopback hosts unless excluded.
        let p = Proxy::all("http://p:1").unwrap();
        assert_eq!(via(&p, "http://127.0.0.1:1/"), Some("p:1".into()));
        assert_eq!(via(&p.no_proxy("127.0.0.1"), "http://127.0.0.1:1/"), None);
    }

    #[test]
    fn bad_values_are_config_errors_that_leave_the_value_out() {
        for (value, says) in [
            ("http://user:hunter2@", "not a URL"),
            ("user:hunter2@", "not a URL"),
            ("http://user:hunter2@p:99999", "invalid proxy port"),
            ("http://user:hunter2@p:", "invalid proxy port"),
            ("http://us er:hunter2@p", "not a URL"),
        ] {
            let err = Proxy::from_vars(vars(&[("HTTPS_PROXY", value)])).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("HTTPS_PROXY") && shown.contains(says), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn other_kinds_of_proxy_in_the_environment_are_skipped_and_in_code_refused() {
        let env = vars(&[("ALL_PROXY", "socks5://user:hunter2@p:1080"), ("HTTPS_PROXY", "HTTPS://p:443")]);
        let p = Proxy::from_vars(env).unwrap();
        assert!(!p.is_some());
        let env = vars(&[("ALL_PROXY", "socks5://p:1080"), ("HTTP_PROXY", "http://plain:8080")]);
        let p = Proxy::from_vars(env).unwrap();
        assert_eq!(
            (via(&p, "https://open.feishu.cn/"), via(&p, "http://x/")),
            (None, Some("plain:8080".into()))
        );
        for url in ["socks5://user:hunter2@p:1080", "https://user:hunter2@p:443"] {
            let err = Proxy::all(url).unwrap_err().to_string();
            assert!(err.contains("unsupported proxy scheme") && !err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn tunnel_targets_name_host_and_port() {
        let target = |uri: &str| tunnel_target(&uri.parse().unwrap()).unwrap();
        assert_eq!(target("https://open.feishu.cn/"), "open.feishu.cn:443");
        assert_eq!(target("http://example.com/"), "example.com:80");
        assert_eq!(target("https://[::1]:8443/x"), "[::1]:8443");
        assert_eq!(target("https://10.0.0.1:444/"), "10.0.0.1:444");
        // As `connect_tcp` gets hosts: IPv6 without brackets.
        assert_eq!(host_port("::1", 443), "[::1]:443");
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let p = Proxy::all("http://us%40er:p%3Ass@proxy.corp:3128").unwrap();
        let server = p.https.as_deref().unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(server.authorization.as_ref().unwrap().to_str().unwrap(), format!("Basic {expected}"));
        let shown = format!("{p:?}");
        assert!(shown.contains("proxy.corp:3128") && shown.contains("<redacted>"), "{shown}");
        assert!(
            !shown.contains("p%3Ass") && !shown.contains(&expected) && !shown.contains("us%40er"),
            "{shown}"
        );
    }
}
