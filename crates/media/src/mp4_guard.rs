//! A check of an MP4 (ISO base media) file's sample tables before symphonia
//! reads them: its demuxer sizes each table's buffer from the entry count
//! the file declares, so a few hostile bytes could ask for gigabytes (the
//! fuzzer found a 17 GB request from one `stts` box). Every table's entries
//! must fit inside its box.

/// Boxes that hold other boxes on the way to the sample tables.
const CONTAINERS: [&[u8; 4]; 8] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"mvex", b"moof",
];

/// True if `head` starts like an ISO base media file (`ftyp` first).
pub(crate) fn looks_like_mp4(head: &[u8]) -> bool {
    head.len() >= 8 && &head[4..8] == b"ftyp"
}

/// Walks the boxes of `bytes` and checks each sample table's declared
/// entries against its size.
pub(crate) fn check(bytes: &[u8]) -> Result<(), String> {
    walk(bytes, 0)
}

fn walk(mut bytes: &[u8], depth: usize) -> Result<(), String> {
    if depth > 16 {
        return Err("the MP4 file nests its boxes too deeply".to_owned());
    }
    while bytes.len() >= 8 {
        let declared = u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        let kind: [u8; 4] = [bytes[4], bytes[5], bytes[6], bytes[7]];
        let (header, size) = match declared {
            // To the end of the file.
            0 => (8, bytes.len() as u64),
            1 if bytes.len() >= 16 => {
                let mut large = [0u8; 8];
                large.copy_from_slice(&bytes[8..16]);
                (16, u64::from_be_bytes(large))
            }
            _ => (8, declared),
        };
        if size < header as u64 {
            return Err("the MP4 file has a box smaller than its header".to_owned());
        }
        // A box running past the end: the file is cut off; symphonia
        // reports that itself, so only what is there is checked.
        let end = usize::try_from(size).unwrap_or(usize::MAX).min(bytes.len());
        let body = &bytes[header.min(end)..end];
        if CONTAINERS.contains(&&kind) {
            walk(body, depth + 1)?;
        } else {
            check_table(&kind, body)?;
        }
        bytes = &bytes[end..];
    }
    Ok(())
}

/// A full box's entry count (after version and flags) must fit its body.
fn check_table(kind: &[u8; 4], body: &[u8]) -> Result<(), String> {
    let read_u32 = |at: usize| -> Option<u64> {
        body.get(at..at + 4)
            .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    };
    // (offset of the count, bytes per entry, bytes before the entries)
    let layout = match kind {
        b"stts" | b"ctts" | b"stco" | b"stss" | b"elst" | b"stsc" | b"co64" => {
            let entry = match kind {
                b"stts" | b"ctts" => 8,
                b"stco" | b"stss" => 4,
                b"stsc" => 12,
                b"co64" => 8,
                // elst: version 1 entries are 20 bytes, version 0 12.
                _ => {
                    if body.first() == Some(&1) {
                        20
                    } else {
                        12
                    }
                }
            };
            Some((4, entry, 8))
        }
        // stsz: a fixed sample size, or 0 and one size per sample.
        b"stsz" => match read_u32(4) {
            Some(0) => Some((8, 4, 12)),
            _ => None,
        },
        _ => None,
    };
    let Some((count_at, entry, start)) = layout else {
        return Ok(());
    };
    let Some(count) = read_u32(count_at) else {
        return Err(format!(
            "the MP4 file's '{}' box is cut short",
            String::from_utf8_lossy(kind)
        ));
    };
    let room = (body.len() as u64).saturating_sub(start);
    if count.saturating_mul(entry) > room {
        return Err(format!(
            "the MP4 file's '{}' box declares {count} entries but holds room for {}",
            String::from_utf8_lossy(kind),
            room / entry
        ));
    }
    Ok(())
}

/// What an MP4 audio track's edit list keeps of the decoded samples:
/// AAC encoders put a priming delay (1,024 samples) and padding around the
/// audio and record in `elst` where it really starts and how long it is;
/// symphonia 0.5 does not apply it, so the decoder's output is trimmed
/// here (as players and FFmpeg do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EditTrim {
    /// Media time units (`mdhd` timescale) to drop from the start.
    pub skip: u64,
    /// Media time units to keep after that.
    pub keep: u64,
    /// The media timescale (units per second).
    pub timescale: u64,
}

impl EditTrim {
    /// The samples of `rate` to drop and keep.
    pub(crate) fn in_samples(&self, rate: u32) -> (u64, u64) {
        let to_samples = |units: u64| {
            u64::try_from(u128::from(units) * u128::from(rate) / u128::from(self.timescale.max(1)))
                .unwrap_or(u64::MAX)
        };
        (to_samples(self.skip), to_samples(self.keep))
    }
}

/// The first sound track's edit, when it has exactly one that plays media
/// (empty edits and several edits are left alone: nothing is trimmed).
/// `bytes` must have passed [`check`].
pub(crate) fn audio_edit(bytes: &[u8]) -> Option<EditTrim> {
    let moov = children(bytes).find(|(kind, _)| kind == b"moov")?.1;
    let movie_timescale = timescale(children(moov).find(|(kind, _)| kind == b"mvhd")?.1)?;
    for (kind, trak) in children(moov) {
        if &kind != b"trak" {
            continue;
        }
        let mdia = children(trak).find(|(kind, _)| kind == b"mdia")?.1;
        let handler = children(mdia).find(|(kind, _)| kind == b"hdlr")?.1;
        if handler.get(8..12) != Some(b"soun") {
            continue;
        }
        let media_timescale = timescale(children(mdia).find(|(kind, _)| kind == b"mdhd")?.1)?;
        let edts = children(trak).find(|(kind, _)| kind == b"edts")?.1;
        let elst = children(edts).find(|(kind, _)| kind == b"elst")?.1;
        let version = *elst.first()?;
        let count = u32::from_be_bytes(elst.get(4..8)?.try_into().ok()?);
        let mut playing = Vec::new();
        for i in 0..count as usize {
            let (duration, media_time) = if version == 1 {
                let at = 8 + i * 20;
                (
                    u64::from_be_bytes(elst.get(at..at + 8)?.try_into().ok()?),
                    i64::from_be_bytes(elst.get(at + 8..at + 16)?.try_into().ok()?),
                )
            } else {
                let at = 8 + i * 12;
                (
                    u64::from(u32::from_be_bytes(elst.get(at..at + 4)?.try_into().ok()?)),
                    i64::from(i32::from_be_bytes(
                        elst.get(at + 4..at + 8)?.try_into().ok()?,
                    )),
                )
            };
            // media_time -1 is an empty edit (silence before the media).
            if media_time >= 0 {
                playing.push((duration, media_time as u64));
            }
        }
        let [(duration, media_time)] = playing[..] else {
            return None;
        };
        if movie_timescale == 0 || media_timescale == 0 {
            return None;
        }
        // A zero duration (fragmented files) plays to the end.
        let keep = if duration == 0 {
            u64::MAX
        } else {
            u64::try_from(
                u128::from(duration) * u128::from(media_timescale) / u128::from(movie_timescale),
            )
            .unwrap_or(u64::MAX)
        };
        return Some(EditTrim {
            skip: media_time,
            keep,
            timescale: media_timescale,
        });
    }
    None
}

/// `mvhd` / `mdhd`'s timescale (version 0: after two 32-bit times; 1:
/// after two 64-bit ones).
fn timescale(full_box: &[u8]) -> Option<u64> {
    let at = if full_box.first() == Some(&1) { 20 } else { 12 };
    Some(u64::from(u32::from_be_bytes(
        full_box.get(at..at + 4)?.try_into().ok()?,
    )))
}

/// The boxes directly inside `bytes`: (kind, body).
fn children(mut bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < 8 {
            return None;
        }
        let declared = u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        let kind: [u8; 4] = [bytes[4], bytes[5], bytes[6], bytes[7]];
        let (header, size) = match declared {
            0 => (8, bytes.len() as u64),
            1 if bytes.len() >= 16 => (
                16,
                u64::from_be_bytes(bytes[8..16].try_into().unwrap_or_default()),
            ),
            _ => (8, declared),
        };
        let end = usize::try_from(size.max(header as u64))
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let body = &bytes[header.min(end)..end];
        bytes = &bytes[end..];
        Some((kind, body))
    })
}
