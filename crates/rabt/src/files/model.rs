//! What a file is (API.md §8): its purpose and type, the validated upload
//! request, and the checks an uploaded object must pass before it is
//! `ready`. Pure rules, no I/O.
//!
//! The declared type decides everything the server later says about the
//! bytes (the stored `Content-Type`, inline or attachment), so the bytes
//! must prove it: magic numbers for images and PDF, a Word document's zip
//! entries for DOCX, valid UTF-8 without NUL bytes for plain text.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    config::{FileSettings, UploadLimits},
    http::{ApiError, ErrorCode, FieldError},
};

/// What a file is uploaded for; it decides the allowed types and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Purpose {
    Avatar,
    ProjectAttachment,
    ApplicationAttachment,
    MessageAttachment,
}

impl Purpose {
    pub const ALL: [Self; 4] = [
        Self::Avatar,
        Self::ProjectAttachment,
        Self::ApplicationAttachment,
        Self::MessageAttachment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avatar => "avatar",
            Self::ProjectAttachment => "project_attachment",
            Self::ApplicationAttachment => "application_attachment",
            Self::MessageAttachment => "message_attachment",
        }
    }

    /// The limits configured for this purpose.
    pub fn limits(self, settings: &FileSettings) -> &UploadLimits {
        match self {
            Self::Avatar => &settings.avatar,
            _ => &settings.attachment,
        }
    }
}

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum FileStatus {
    /// Created; the bytes are not checked yet.
    Pending,
    /// Checked: the bytes are what was declared.
    Ready,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
        }
    }
}

/// The content types rabt can check (`crate::config::FILE_TYPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Png,
    Jpeg,
    Webp,
    Pdf,
    Text,
    Docx,
}

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

impl FileType {
    pub const ALL: [Self; 6] = [
        Self::Png,
        Self::Jpeg,
        Self::Webp,
        Self::Pdf,
        Self::Text,
        Self::Docx,
    ];

    /// The MIME type, as configured and declared.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Pdf => "application/pdf",
            Self::Text => "text/plain",
            Self::Docx => DOCX,
        }
    }

    /// What the object is stored and served as (`Content-Type`).
    pub fn stored_content_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain; charset=utf-8",
            other => other.mime(),
        }
    }

    /// Only images are shown in the browser; everything else downloads.
    pub fn inline(self) -> bool {
        matches!(self, Self::Png | Self::Jpeg | Self::Webp)
    }

    /// A declared `Content-Type`: case and spaces do not matter; the only
    /// parameter admitted is `charset=utf-8` on text.
    pub fn parse(declared: &str) -> Option<Self> {
        let mut parts = declared.split(';').map(str::trim);
        let essence = parts.next()?.to_ascii_lowercase();
        let file_type = Self::ALL.into_iter().find(|t| t.mime() == essence)?;
        for parameter in parts.filter(|p| !p.is_empty()) {
            let (name, value) = parameter.split_once('=')?;
            let utf8 = name.trim().eq_ignore_ascii_case("charset")
                && value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8");
            if file_type != Self::Text || !utf8 {
                return None;
            }
        }
        Some(file_type)
    }

    /// How many leading bytes the check needs (text is read whole).
    pub const HEAD_BYTES: u64 = 64 * 1024;

    /// Whether `head`, the first bytes of the object, fits the declared
    /// type. Text is checked over all its bytes by [`TextCheck`] instead.
    pub fn matches_head(self, head: &[u8]) -> bool {
        match self {
            Self::Docx => is_word_document(head),
            // A prefix may end inside a character; the rest is read by `TextCheck`.
            Self::Text => TextCheck::default().feed(head),
            other => infer::get(head).is_some_and(|t| t.mime_type() == other.mime()),
        }
    }
}

/// Checks, chunk by chunk, that bytes are UTF-8 text without NUL bytes; a
/// character may be split between chunks.
#[derive(Debug, Default)]
pub struct TextCheck {
    carry: Vec<u8>,
}

impl TextCheck {
    /// `false` as soon as the bytes cannot be text.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        if chunk.contains(&0) {
            return false;
        }
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(chunk);
        match std::str::from_utf8(&bytes) {
            Ok(_) => true,
            // Cut in the middle of a character: keep its start for the next chunk.
            Err(err) if err.error_len().is_none() => {
                self.carry = bytes[err.valid_up_to()..].to_vec();
                true
            }
            Err(_) => false,
        }
    }

    /// `false` when the text ended in the middle of a character.
    pub fn finish(self) -> bool {
        self.carry.is_empty()
    }
}

/// A Word document is a zip whose entries include `[Content_Types].xml` and
/// the `word/` part. The entries are read from the local file headers of
/// the first bytes (Word writes these entries first); a zip that is not a
/// Word document, or any other file, is refused.
pub fn is_word_document(head: &[u8]) -> bool {
    let names = zip_entry_names(head, 64);
    names.iter().any(|n| n == b"[Content_Types].xml")
        && names.iter().any(|n| n.starts_with(b"word/"))
}

/// The names of the zip's first entries, walking local file headers (`PK\3\4`).
fn zip_entry_names(bytes: &[u8], at_most: usize) -> Vec<Vec<u8>> {
    const SIGNATURE: &[u8] = b"PK\x03\x04";
    let u16_at = |at: usize| -> Option<usize> {
        bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let u32_at = |at: usize| -> Option<usize> {
        bytes
            .get(at..at + 4)
            .and_then(|b| usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok())
    };
    let mut names = Vec::new();
    let mut at = 0;
    if !bytes.starts_with(SIGNATURE) {
        return names;
    }
    while names.len() < at_most && bytes.get(at..at + 4) == Some(SIGNATURE) {
        let (Some(flags), Some(compressed), Some(name_len), Some(extra_len)) = (
            u16_at(at + 6),
            u32_at(at + 18),
            u16_at(at + 26),
            u16_at(at + 28),
        ) else {
            break;
        };
        let name_start = at + 30;
        let Some(name) = bytes.get(name_start..name_start + name_len) else {
            break;
        };
        names.push(name.to_vec());
        let data_start = name_start + name_len + extra_len;
        at = if flags & 0x08 == 0 {
            data_start + compressed
        } else {
            // The size follows the data (a data descriptor): find the next header.
            match bytes
                .get(data_start..)
                .and_then(|rest| rest.windows(4).position(|w| w == SIGNATURE))
            {
                Some(offset) => data_start + offset,
                None => break,
            }
        };
    }
    names
}

/// A file's name as shown and offered for download: 1 to 255 characters,
/// no control characters or path separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filename(String);

impl Filename {
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let name = value.trim();
        let fine = (1..=255).contains(&name.chars().count())
            && !name
                .chars()
                .any(|c| c.is_control() || c == '/' || c == '\\')
            && name != "."
            && name != "..";
        if fine {
            Ok(Self(name.to_owned()))
        } else {
            Err(FieldError::new(
                "filename",
                "invalid",
                "1 to 255 characters, without control characters or slashes.",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `Content-Disposition` a download is served with: inline only for
/// images, the name in ASCII and (RFC 6266/8187) in UTF-8.
pub fn content_disposition(file_type: FileType, filename: &str) -> String {
    let kind = if file_type.inline() {
        "inline"
    } else {
        "attachment"
    };
    let ascii: String = filename
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// What a client asks to upload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// 1 to 255 characters.
    pub filename: String,
    /// One of the purpose's allowed types, e.g. `image/png`.
    pub content_type: String,
    /// The exact size of the bytes to upload.
    pub size_bytes: i64,
    pub purpose: Purpose,
}

/// A validated upload request.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub filename: Filename,
    pub file_type: FileType,
    pub size_bytes: u64,
    pub purpose: Purpose,
}

impl NewUpload {
    /// Checks the request against the purpose's limits: malformed fields
    /// are 422, a type the purpose does not take is 415, too many bytes 413.
    pub fn parse(request: UploadRequest, settings: &FileSettings) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let filename = Filename::parse(&request.filename).map_err(|e| errors.push(e));
        let size_bytes = u64::try_from(request.size_bytes)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                errors.push(FieldError::new(
                    "size_bytes",
                    "invalid",
                    "A positive number of bytes.",
                ));
            });
        if request.content_type.len() > 255 {
            errors.push(FieldError::new(
                "content_type",
                "too_long",
                "At most 255 characters.",
            ));
        }
        let (Ok(filename), Ok(size_bytes), true) = (filename, size_bytes, errors.is_empty()) else {
            return Err(ApiError::validation(errors));
        };
        let limits = request.purpose.limits(settings);
        let file_type = FileType::parse(&request.content_type)
            .filter(|t| limits.types.iter().any(|allowed| allowed == t.mime()))
            .ok_or_else(|| {
                ApiError::new(ErrorCode::UnsupportedMediaType).with_detail(format!(
                    "A {} may be one of: {}.",
                    request.purpose.as_str(),
                    limits.types.join(", ")
                ))
            })?;
        if size_bytes > limits.max_bytes {
            return Err(
                ApiError::new(ErrorCode::PayloadTooLarge).with_detail(format!(
                    "A {} may have at most {} bytes.",
                    request.purpose.as_str(),
                    limits.max_bytes
                )),
            );
        }
        Ok(Self {
            filename,
            file_type,
            size_bytes,
            purpose: request.purpose,
        })
    }
}

/// Where and how to send the bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadInstructions {
    /// Always `PUT`.
    pub method: String,
    pub url: String,
    /// Headers the upload must carry exactly as given (they are signed).
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// The answer to `POST /files`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUpload {
    pub id: Uuid,
    pub status: FileStatus,
    pub upload: UploadInstructions,
}

/// A file as its viewers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub purpose: Purpose,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub status: FileStatus,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// A signed URL to read the bytes, while it has not expired; `null`
    /// until the file is ready.
    pub download_url: Option<String>,
    pub download_expires_at: Option<DateTime<Utc>>,
}

/// Why `complete` refused an upload, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Size,
    Content,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Size => "size",
            Self::Content => "content",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FILE_TYPES, StorageLocation};

    fn settings() -> FileSettings {
        FileSettings {
            storage: StorageLocation::Local {
                root: ".data/files".into(),
            },
            quota_bytes: 1 << 30,
            avatar: UploadLimits {
                max_bytes: 5 << 20,
                types: vec!["image/png".into(), "image/jpeg".into(), "image/webp".into()],
            },
            attachment: UploadLimits {
                max_bytes: 25 << 20,
                types: FILE_TYPES.iter().map(|t| (*t).to_owned()).collect(),
            },
            upload_url_ttl: std::time::Duration::from_secs(900),
            download_url_ttl: std::time::Duration::from_secs(300),
            detached_grace: std::time::Duration::from_secs(86_400),
        }
    }

    fn request(content_type: &str, size: i64, purpose: Purpose) -> UploadRequest {
        UploadRequest {
            filename: "cv.pdf".into(),
            content_type: content_type.into(),
            size_bytes: size,
            purpose,
        }
    }

    /// A zip of stored (uncompressed) entries, as a Word document's start.
    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in entries {
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            let size = u32::try_from(data.len()).unwrap().to_le_bytes();
            out.extend_from_slice(&size);
            out.extend_from_slice(&size);
            out.extend_from_slice(&u16::try_from(name.len()).unwrap().to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(b"PK\x01\x02");
        out
    }

    #[test]
    fn every_configurable_type_has_a_check() {
        for mime in FILE_TYPES {
            assert_eq!(FileType::parse(mime).map(FileType::mime), Some(*mime));
        }
    }

    #[test]
    fn declared_types_ignore_case_and_admit_only_utf8_text_parameters() {
        assert_eq!(FileType::parse("IMAGE/PNG"), Some(FileType::Png));
        assert_eq!(
            FileType::parse("text/plain; charset=UTF-8"),
            Some(FileType::Text)
        );
        assert_eq!(FileType::parse("text/plain; charset=latin1"), None);
        assert_eq!(FileType::parse("image/png; x=y"), None);
        assert_eq!(FileType::parse("text/html"), None);
        assert_eq!(FileType::parse("image/svg+xml"), None);
    }

    #[test]
    fn uploads_are_checked_against_the_purposes_limits() {
        let s = settings();
        let ok = NewUpload::parse(request("image/png", 10, Purpose::Avatar), &s).unwrap();
        assert_eq!(ok.file_type, FileType::Png);
        let err =
            NewUpload::parse(request("application/pdf", 10, Purpose::Avatar), &s).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedMediaType);
        let err = NewUpload::parse(
            request("image/png", 5 * 1024 * 1024 + 1, Purpose::Avatar),
            &s,
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
        let ok = NewUpload::parse(
            request("application/pdf", 25 << 20, Purpose::MessageAttachment),
            &s,
        );
        assert!(ok.is_ok());
        let err = NewUpload::parse(request("image/png", 0, Purpose::Avatar), &s).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationFailed);
    }

    #[test]
    fn filenames_refuse_paths_and_control_characters() {
        assert_eq!(
            Filename::parse("  Résumé 2026.pdf ").unwrap().as_str(),
            "Résumé 2026.pdf"
        );
        for bad in ["", "..", "a/b", "a\\b", "a\nb", &"x".repeat(256)] {
            assert!(Filename::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_sniffing_needs_the_declared_magic() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
        assert!(FileType::Png.matches_head(png));
        assert!(!FileType::Jpeg.matches_head(png));
        assert!(!FileType::Png.matches_head(b"just some text, not an image"));
        assert!(FileType::Pdf.matches_head(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"));
    }

    #[test]
    fn docx_must_be_a_word_document_not_just_a_zip() {
        let word = zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("_rels/.rels", b"<Relationships/>"),
            ("word/document.xml", b"<w:document/>"),
        ]);
        assert!(FileType::Docx.matches_head(&word));
        let spreadsheet = zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("xl/workbook.xml", b"<workbook/>"),
        ]);
        assert!(!FileType::Docx.matches_head(&spreadsheet));
        let plain_zip = zip(&[("notes.txt", b"hello")]);
        assert!(!FileType::Docx.matches_head(&plain_zip));
        assert!(!FileType::Docx.matches_head(b"PK\x03\x04"));
        assert!(!FileType::Docx.matches_head(b"not a zip"));
    }

    #[test]
    fn text_must_be_utf8_without_nul_even_across_chunks() {
        let mut check = TextCheck::default();
        let text = "grüße".as_bytes();
        assert!(check.feed(&text[..3]));
        assert!(check.feed(&text[3..]));
        assert!(check.finish());
        let mut check = TextCheck::default();
        assert!(!check.feed(b"a\0b"));
        let mut check = TextCheck::default();
        assert!(!check.feed(b"\xff\xfe"));
        let mut check = TextCheck::default();
        assert!(check.feed(&text[..3]));
        assert!(!check.finish());
        assert!(!FileType::Text.matches_head(b"\x89PNG\r\n"));
    }

    #[test]
    fn downloads_are_attachments_except_images() {
        assert!(content_disposition(FileType::Png, "a.png").starts_with("inline;"));
        let pdf = content_disposition(FileType::Pdf, "Ünïcode \"x\".pdf");
        assert!(pdf.starts_with("attachment; filename=\"_n_code _x_.pdf\""));
        assert!(pdf.ends_with("filename*=UTF-8''%C3%9Cn%C3%AFcode%20%22x%22.pdf"));
    }
}
