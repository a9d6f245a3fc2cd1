//! Django REST Framework's page-number pagination, with the quirks of the real API.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde_json::{json, Value};

use super::*;

#[derive(Clone, Copy)]
pub(crate) enum Kind {
    CallOutcomes,
    ProductRegistrations,
}

/// Longest accepted date range, in days.
pub(crate) const MAX_RANGE_DAYS: usize = 36_600;

impl Sim {
    pub(crate) fn known_campaign(&self, id: &str) -> Option<u64> {
        let id: u64 = id.parse().ok()?;
        campaign_meta(&self.cfg, id).map(|_| id)
    }

    pub(crate) fn current_faults(&self) -> Arc<Faults> {
        Arc::clone(&self.faults.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn rows(
        &self,
        kind: Kind,
        campaign_id: u64,
        day: NaiveDate,
        version: u32,
    ) -> DayRows {
        let key = (
            matches!(kind, Kind::CallOutcomes),
            campaign_id,
            day,
            version,
        );
        if let Some((_, rows)) = self.cache.lock().unwrap().iter().find(|(k, _)| *k == key) {
            return rows.clone();
        }
        let rows = Arc::new(match kind {
            Kind::CallOutcomes => records_at(&self.cfg, campaign_id, day, version),
            Kind::ProductRegistrations => {
                product_registrations_at(&self.cfg, campaign_id, day, version)
            }
        });
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= CACHED_DAYS {
            cache.remove(0);
        }
        cache.push((key, rows.clone()));
        rows
    }

    pub(crate) fn len(&self, kind: Kind, campaign_id: u64, day: NaiveDate, version: u32) -> usize {
        match kind {
            Kind::CallOutcomes => match row_count(&self.cfg, campaign_id, day) {
                0 => 0,
                n => n + version as usize,
            },
            Kind::ProductRegistrations => self.rows(kind, campaign_id, day, version).len(),
        }
    }

    /// (campaign, day, version, rows) of every campaign (outer) and day (inner), at the current
    /// versions capped at `max_version`.
    pub(crate) fn segments(
        &self,
        kind: Kind,
        campaign_ids: &[u64],
        days: &[NaiveDate],
        max_version: u32,
    ) -> Vec<(u64, NaiveDate, u32, usize)> {
        let pairs = campaign_ids
            .iter()
            .flat_map(|&c| days.iter().map(move |&d| (c, d)));
        let with_versions: Vec<(u64, NaiveDate, u32)> = if max_version == 0 {
            pairs.map(|(c, d)| (c, d, 0)).collect()
        } else {
            let is_calls = matches!(kind, Kind::CallOutcomes);
            let versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
            pairs
                .map(|(c, d)| {
                    let v = versions.get(&(is_calls, c, d)).copied().unwrap_or(0);
                    (c, d, v.min(max_version))
                })
                .collect()
        };
        with_versions
            .into_iter()
            .map(|(c, d, v)| (c, d, v, self.len(kind, c, d, v)))
            .collect()
    }

    /// One more insert (up to `max_version`) into every non-empty (campaign, day); true if any
    /// day changed.
    pub(crate) fn insert_rows(
        &self,
        kind: Kind,
        campaign_ids: &[u64],
        days: &[NaiveDate],
        max_version: u32,
    ) -> bool {
        let is_calls = matches!(kind, Kind::CallOutcomes);
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for &c in campaign_ids {
            for &d in days {
                if row_count(&self.cfg, c, d) == 0 {
                    continue;
                }
                let v = versions.entry((is_calls, c, d)).or_insert(0);
                if *v < max_version {
                    *v += 1;
                    changed = true;
                }
            }
        }
        changed
    }

    /// One page of the records of `campaign_ids` (outer) and the days of the range (inner).
    pub(crate) fn page(
        &self,
        kind: Kind,
        campaign_ids: &[u64],
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Response {
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let param = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };

        // Dates: both given, or "today" for both.
        let (from, to) = match (param("from_date"), param("to_date")) {
            (Some(from), Some(to)) if !from.is_empty() && !to.is_empty() => {
                match (parse_api_date(from), parse_api_date(to)) {
                    (Some(from), Some(to)) => (from, to),
                    (None, _) => return bad_date("from_date", from),
                    (_, None) => return bad_date("to_date", to),
                }
            }
            _ => {
                let today = chrono::Local::now().date_naive();
                (today, today)
            }
        };
        let days: Vec<NaiveDate> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .take(MAX_RANGE_DAYS + 1)
            .collect();
        if days.len() > MAX_RANGE_DAYS {
            return error(StatusCode::BAD_REQUEST, "Date range too long.");
        }
        let faults = self.current_faults();
        if days.iter().any(|d| faults.failing_days.contains(d)) {
            let mut response = error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.");
            response.extensions_mut().insert(FaultTag("failing-day"));
            return response;
        }

        // Segments (campaign, day, version, rows) and the requested page.
        let max_version = faults.inserts_while_paging;
        let mut segments = self.segments(kind, campaign_ids, &days, max_version);
        let mut count: usize = segments.iter().map(|s| s.3).sum();
        let page_size = self.cfg.page_size.max(1);
        let mut last_page = count.div_ceil(page_size).max(1);
        let mut page = match param("page") {
            None => 1,
            Some("last") => last_page,
            Some(p) => match p.parse::<usize>() {
                Ok(p) if (1..=last_page).contains(&p) => p,
                _ => return not_found("Invalid page."),
            },
        };
        // A live table: rows get inserted while the client pages on.
        if page >= 2 && max_version > 0 && self.insert_rows(kind, campaign_ids, &days, max_version)
        {
            segments = self.segments(kind, campaign_ids, &days, max_version);
            count = segments.iter().map(|s| s.3).sum();
            last_page = count.div_ceil(page_size).max(1);
            if param("page") == Some("last") {
                page = last_page;
            } else if page > last_page {
                return not_found("Invalid page.");
            }
        }
        let cache_key = (self.cfg.cache_pages && max_version == 0).then(|| {
            let host = header_text(headers, header::HOST).unwrap_or_default();
            format!(
                "{host}|{}|{campaign_ids:?}|{from}|{to}|{page}",
                matches!(kind, Kind::CallOutcomes)
            )
        });
        if let Some(body) = cache_key
            .as_ref()
            .and_then(|k| self.page_cache.lock().unwrap().get(k).cloned())
        {
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        let (start, end) = ((page - 1) * page_size, (page * page_size).min(count));

        let mut results = Vec::with_capacity(end - start);
        let mut offset = 0;
        for &(c, d, v, len) in &segments {
            let (lo, hi) = (offset, offset + len);
            offset = hi;
            if hi <= start || lo >= end || len == 0 {
                continue;
            }
            let rows = self.rows(kind, c, d, v);
            let take = rows
                .iter()
                .skip(start.saturating_sub(lo))
                .take(end.min(hi) - start.max(lo));
            results.extend(take.cloned().map(Value::Object));
        }

        let body = self.envelope(uri, headers, &params, (page, last_page), count, results);
        match cache_key {
            Some(key) => {
                let bytes = bytes::Bytes::from(serde_json::to_vec(&body).expect("JSON serialises"));
                self.page_cache.lock().unwrap().insert(key, bytes.clone());
                ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
            }
            None => Json(body).into_response(),
        }
    }

    /// A DRF page: `count`, `next` and `previous` links (page `at.0` of `at.1`), `results`.
    pub(crate) fn envelope(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        params: &[(String, String)],
        (page, last_page): (usize, usize),
        count: usize,
        results: Vec<Value>,
    ) -> Value {
        let link = |n: usize| Value::String(self.page_link(uri, headers, params, n));
        json!({
            "count": count,
            "next": if page < last_page { link(page + 1) } else { Value::Null },
            "previous": if page > 1 { link(page - 1) } else { Value::Null },
            "results": Value::Array(results),
        })
    }

    /// Absolute URL of page `n` of this query, as DRF builds it: the request's own host, the
    /// query re-sorted by key, `page` replaced (and dropped for page 1). Quirks change the host
    /// or drop the `?`.
    pub(crate) fn page_link(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        params: &[(String, String)],
        n: usize,
    ) -> String {
        let base = if self.cfg.quirks.foreign_next {
            let host = self.cfg.next_host.as_deref().unwrap_or(DEFAULT_NEXT_HOST);
            host.trim_end_matches('/').to_owned()
        } else {
            let host = header_text(headers, header::HOST).unwrap_or_else(|| self.addr.to_string());
            format!("http://{host}")
        };
        let mut pairs: Vec<(&str, String)> = params
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if n > 1 {
            pairs.push(("page", n.to_string()));
        }
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let path = uri.path();
        if query.is_empty() {
            format!("{base}{path}")
        } else if self.cfg.quirks.malformed_next {
            let slash = if path.ends_with('/') { "" } else { "/" };
            format!("{base}{path}{slash}{query}")
        } else {
            format!("{base}{path}?{query}")
        }
    }
}

/// `YYYYMMDD` exactly.
pub(crate) fn parse_api_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y%m%d").ok()
}

pub(crate) fn bad_date(name: &str, value: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ name: [format!("Invalid date '{value}': expected YYYYMMDD.")] })),
    )
        .into_response()
}
