//! The tiny_http side of a request: who sent it (the edge's `X-Dedyn-Client` header,
//! trusted proxies), the `Incoming` the service works on, and the reply written back
//! with the headers every response carries (SPEC 4.4).

use super::service::{Incoming, Reply, Service};
use crate::edge::{forwarded_client, CLIENT_HEADER};
use crate::update::ledger::Ledger;
use crate::update::Refusal;
use log::info;
use std::io::{Read, Write};
use std::time::Instant;

/// Answer one tiny_http request (the pool catches a panic in here).
pub fn handle(service: &Service, ledger: &mut dyn Ledger, mut rq: tiny_http::Request) {
    let started = Instant::now();
    let identity = rq
        .headers()
        .iter()
        .filter(|h| h.field.equiv(CLIENT_HEADER))
        .map(|h| h.value.as_str());
    let Some(conn) = service.hop.client_of(identity) else {
        // Not relayed by the edge: only this process can reach the internal
        // socket, so this is a bug or someone who got past the directory's mode.
        write_reply(
            rq,
            Reply::not_relayed(),
            false,
            service.config.server.hsts_max_age,
        );
        return;
    };
    // Only an acme-dns call has a body we read (at most 1 KiB and one byte, so
    // that a larger one is refused, not cut). The edge has buffered the whole
    // request before relaying it, so this read cannot wait on a slow client.
    let mut body = Vec::new();
    if crate::update::acme::is_acme_call(rq.method().as_str(), rq.url()) {
        let limit = crate::update::refusal::MAX_BODY as u64 + 1;
        if let Err(e) = rq.as_reader().take(limit).read_to_end(&mut body) {
            log::debug!("reading an acme-dns body failed: {e}");
        }
    }
    let header = |name: &str| {
        rq.headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    };
    let method = rq.method().as_str().to_string();
    let forwarded = rq
        .headers()
        .iter()
        .filter(|h| h.field.equiv("X-Forwarded-For"))
        .map(|h| h.value.as_str());
    let client = match forwarded_client(
        &conn.peer,
        forwarded,
        &service.config.server.trusted_proxies,
    ) {
        Ok(client) => client,
        Err(e) => {
            log::warn!("refused a request: {e}");
            let reply = Reply::refusal(&Refusal::BadRequest(e.to_string()));
            write_reply(rq, reply, conn.tls, service.config.server.hsts_max_age);
            return;
        }
    };
    let tls = conn.tls;
    let api_user = header("X-Api-User").map(str::to_string);
    let api_key = header("X-Api-Key").map(str::to_string);
    let incoming = Incoming {
        method: &method,
        target: rq.url(),
        host: header("Host"),
        authorization: header("Authorization"),
        api_user: api_user.as_deref(),
        api_key: api_key.as_deref(),
        body: &body,
        client,
        conn,
    };
    let (reply, summary) = service.process(ledger, &incoming);
    let status = reply.status;
    info!(
        "{client} {} {} {} {summary} ({} us)",
        if tls { "https" } else { "http" },
        crate::net::name::printable(&method),
        reply.status,
        started.elapsed().as_micros()
    );
    write_reply(rq, reply, tls, service.config.server.hsts_max_age);
    service
        .counters
        .requests_by_status
        .observe(status, started.elapsed());
}

impl Reply {
    /// `403` to a request without the edge's client identity: it did not come
    /// through the edge. Not a refusal of the protocol (no client of the public
    /// listener can get it), so it is answered here, at the hop, not by the
    /// refusal table in `update::refusal`.
    fn not_relayed() -> Reply {
        Reply {
            status: 403,
            body: "connect through the public listener\n".into(),
            headers: Vec::new(),
            content_type: "text/plain",
        }
    }
}

/// Every response: `Content-Type`, `Cache-Control: no-store`, HSTS on HTTPS, and a
/// `Content-Length` — never chunked (SPEC 4.4).
fn write_reply(rq: tiny_http::Request, reply: Reply, tls: bool, hsts_max_age: u64) {
    let mut response =
        tiny_http::Response::from_data(reply.body.into_bytes()).with_status_code(reply.status);
    let mut add = |name: &str, value: &str| {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    };
    add("Content-Type", reply.content_type);
    add("Cache-Control", "no-store");
    if tls {
        add(
            "Strict-Transport-Security",
            &format!("max-age={hsts_max_age}"),
        );
    }
    for (k, v) in &reply.headers {
        add(k, v);
    }
    // Not `rq.respond`: tiny_http answers a request's `TE: chunked` with a chunked
    // body and no Content-Length, which ddclient up to 3.10 cannot read (SPEC 4.4).
    // Printing without the request's headers keeps every response Content-Length.
    let version = rq.http_version().clone();
    let head = *rq.method() == tiny_http::Method::Head;
    let mut writer = rq.into_writer();
    let sent = response
        .raw_print(&mut writer, version, &[], head, None)
        .and_then(|()| writer.flush());
    if let Err(e) = sent {
        log::debug!("client went away before the response: {e}");
    }
}
