//! Entry counts for the dashboard, read from `log_counts` (migration 5):
//! entries per (service, hour, level), added by every append (see
//! `write.rs`) and never touched by retention. Day buckets are summed from
//! hours at query time.

use crate::db;
use crate::write::{hour_of, project_id};
use faultline_model::Level;
use faultline_store::{Bucket, LogCount, Result, ServiceActivity, StoreError};
use rusqlite::{Connection, params};

fn project(conn: &Connection, name: &str) -> Result<i64> {
    project_id(conn, name)?.ok_or_else(|| StoreError::NotFound {
        what: "project",
        name: name.to_owned(),
    })
}

fn count_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn log_counts(
    conn: &Connection,
    project_name: &str,
    service: Option<&str>,
    bucket: Bucket,
    since: i64,
) -> Result<Vec<LogCount>> {
    // One snapshot for the project lookup and the counts.
    let tx = conn
        .unchecked_transaction()
        .map_err(db("begin reading log counts"))?;
    let pid = project(&tx, project_name)?;
    let size = bucket.micros();
    let rows: Vec<(i64, i64, i64)> = tx
        .prepare_cached(
            "SELECT c.hour - ((c.hour % ?4) + ?4) % ?4 AS b, c.level, sum(c.count) \
             FROM services AS s JOIN log_counts AS c ON c.service_id = s.id \
             WHERE s.project_id = ?1 AND (?2 IS NULL OR s.name = ?2) AND c.hour >= ?3 \
             GROUP BY b, c.level ORDER BY b, c.level",
        )
        .and_then(|mut s| {
            s.query_map(params![pid, service, hour_of(since), size], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
        .map_err(db("read log counts"))?;
    rows.into_iter()
        .map(|(bucket, level, count)| {
            let level = u8::try_from(level)
                .ok()
                .and_then(Level::from_code)
                .ok_or_else(|| StoreError::Invalid(format!("unknown level code {level}")))?;
            Ok(LogCount {
                bucket,
                level,
                count: count_of(count),
            })
        })
        .collect()
}

pub(crate) fn service_activity(
    conn: &Connection,
    project_name: &str,
    since: i64,
) -> Result<Vec<ServiceActivity>> {
    let tx = conn
        .unchecked_transaction()
        .map_err(db("begin reading service activity"))?;
    let pid = project(&tx, project_name)?;
    tx.prepare_cached(
        "SELECT s.name, coalesce(sum(c.count), 0), \
         coalesce(sum(CASE WHEN c.level >= ?3 THEN c.count END), 0) \
         FROM services AS s LEFT JOIN log_counts AS c ON c.service_id = s.id AND c.hour >= ?2 \
         WHERE s.project_id = ?1 GROUP BY s.id ORDER BY s.name",
    )
    .and_then(|mut s| {
        s.query_map(
            params![pid, hour_of(since), i64::from(Level::Error.code())],
            |r| {
                Ok(ServiceActivity {
                    service: r.get(0)?,
                    total: count_of(r.get(1)?),
                    errors: count_of(r.get(2)?),
                })
            },
        )?
        .collect()
    })
    .map_err(db("read service activity"))
}
