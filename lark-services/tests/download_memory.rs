//! A 50 MB download streams through the SDK with bounded memory: the process's peak resident
//! memory (VmHWM, reset before the download) grows by far less than the file. This file holds a
//! single test so nothing else runs in the process meanwhile.

use futures_util::StreamExt;
use lark_services::Client;
use lark_testkit::FakePlatform;

/// A field of /proc/self/status in bytes (Linux).
fn status_bytes(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[tokio::test]
async fn fifty_megabytes_stream_with_bounded_memory() {
    const SIZE: usize = 50 * 1024 * 1024;
    let p = FakePlatform::start().await;
    let c = Client::builder(p.app_id(), p.app_secret()).base_url(p.base_url()).build().unwrap();
    c.tokens().tenant_access_token(None).await.unwrap();

    let (Some(baseline), true) = (status_bytes("VmRSS:"), reset_peak()) else {
        eprintln!("SKIPPED: /proc/self/status or clear_refs unavailable; cannot measure peak memory here");
        return;
    };
    let dl = c
        .get("/open-apis/im/v1/files/:file_key")
        .path_param("file_key", format!("size_{SIZE}"))
        .download()
        .await
        .unwrap();
    assert_eq!(dl.file_name(), Some(&*format!("size_{SIZE}.bin")));
    let mut stream = std::pin::pin!(dl.into_stream());
    let mut total = 0usize;
    let mut mismatch = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for (i, b) in chunk.iter().enumerate() {
            if mismatch.is_none() && *b != ((total + i) % 251) as u8 {
                mismatch = Some(total + i);
            }
        }
        total += chunk.len();
    }
    assert_eq!(total, SIZE);
    assert_eq!(mismatch, None, "content differs");
    let peak_growth = status_bytes("VmHWM:").unwrap_or(usize::MAX).saturating_sub(baseline);
    // Client and server share this process, so both sides' buffers count; 16 MiB is far below 50 MB.
    assert!(peak_growth < 16 * 1024 * 1024, "peak RSS grew by {peak_growth} bytes while streaming 50 MB");
}
