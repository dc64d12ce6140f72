//! The file protocol: `<sha256> <name>\n` + bytes, answered by the SHA-256 the receiver computed.

use std::path::Path;

use futures::{AsyncReadExt, AsyncWriteExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One incoming file: header `<sha256> <name>`, then the bytes into a part
/// file renamed to `received-<name>` only when their SHA-256 is the announced
/// one; on any failure the part file goes and `receive_failed` is printed.
/// Answers with the SHA-256 computed here (when all bytes came).
pub async fn receive(
    mut stream: libp2p::Stream,
    out_dir: &Path,
) -> Result<(String, u64, String), (Option<String>, u64, String)> {
    // header: up to the first newline
    let mut header = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream
            .read_exact(&mut byte)
            .await
            .map_err(|e| (None, 0, format!("reading the header: {e}")))?;
        if byte[0] == b'\n' {
            break;
        }
        if header.len() > 4096 {
            return Err((None, 0, "header too long".into()));
        }
        header.push(byte[0]);
    }
    let header = String::from_utf8(header).map_err(|_| (None, 0, "bad header: not UTF-8".to_string()))?;
    let (announced, name) = match header.split_once(' ') {
        Some((sha, name))
            if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            (sha.to_string(), name)
        }
        _ => return Err((None, 0, "bad header: expected \"<sha256> <name>\"".into())),
    };
    let base = match Path::new(name).file_name() {
        Some(b) => b.to_string_lossy().into_owned(),
        None => return Err((None, 0, "bad header: empty file name".into())),
    };
    let final_path = out_dir.join(format!("received-{base}"));
    let part_path = out_dir.join(format!(".received-{base}.{:08x}.part", rand::random::<u32>()));
    let mut bytes = 0u64;
    let result: Result<String, String> = async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part_path)
            .await
            .map_err(|e| e.to_string())?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            file.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
            bytes += n as u64;
        }
        file.flush().await.map_err(|e| e.to_string())?;
        file.sync_all().await.map_err(|e| e.to_string())?;
        Ok(hex(&hash.finalize()))
    }
    .await;
    let sha256 = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part_path).await;
            return Err((Some(base), bytes, e));
        }
    };
    let kept = if sha256 == announced {
        tokio::fs::rename(&part_path, &final_path)
            .await
            .map_err(|e| e.to_string())
    } else {
        Err(format!(
            "SHA-256 mismatch after {bytes} bytes: got {sha256}, the sender announced {announced}"
        ))
    };
    if kept.is_err() {
        let _ = tokio::fs::remove_file(&part_path).await;
    }
    // the answer in every case: the sender compares it with what it sent
    let _ = stream.write_all(sha256.as_bytes()).await;
    let _ = stream.close().await;
    kept.map(|_| (base, bytes, sha256.clone()))
        .map_err(|e| (Some(name.to_string()), bytes, e))
}

pub async fn send_file(
    mut stream: libp2p::Stream,
    path: &Path,
) -> Result<(u64, String, String), Box<dyn std::error::Error + Send + Sync>> {
    let name = path
        .file_name()
        .ok_or("--file has no file name")?
        .to_string_lossy()
        .into_owned();
    let (_, announced) = read_file(path, None).await?;
    // the header carries the SHA-256: the receiver keeps the file only if it matches
    stream.write_all(format!("{announced} {name}\n").as_bytes()).await?;
    let (bytes, sent) = read_file(path, Some(&mut stream)).await?;
    stream.close().await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok((bytes, sent, String::from_utf8_lossy(&answer).into_owned()))
}

/// Reads the file at `path` in 64 KiB chunks, writing each to `copy_to` when
/// given: its size and SHA-256 (hex).
async fn read_file(path: &Path, mut copy_to: Option<&mut libp2p::Stream>) -> std::io::Result<(u64, String)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        if let Some(out) = copy_to.as_deref_mut() {
            out.write_all(&buf[..n]).await?;
        }
        bytes += n as u64;
    }
    Ok((bytes, hex(&hash.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
