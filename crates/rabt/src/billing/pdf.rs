//! An invoice as a PDF, drawn in rabt: the seller, the customer, the number
//! and dates, the lines, tax and totals in the invoice's currency.
//!
//! Text is set in DejaVu Sans (embedded in the binary, subset into each PDF),
//! which covers every Latin script, so a customer's name prints as written.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use krilla::{
    Document,
    color::rgb,
    geom::{PathBuilder, Point},
    num::NormalizedF32,
    page::PageSettings,
    paint::{Fill, Stroke},
    text::{Font, TextDirection},
};

use super::model::{InvoiceLine, InvoiceRow};

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`).
static FONT_DATA: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn font() -> Option<Font> {
    static FONT: OnceLock<Option<Font>> = OnceLock::new();
    FONT.get_or_init(|| Font::new(FONT_DATA.into(), 0)).clone()
}

/// A4, in points.
const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;
/// Where a page's text may go down to before the next page starts.
const BOTTOM: f32 = HEIGHT - 72.0;
/// Longest description printed on one line, in characters.
const DESCRIPTION_CHARS: usize = 60;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the embedded font cannot be read")]
    Font,
    #[error("the PDF could not be written: {0}")]
    Write(String),
}

/// The digits after the decimal point of `currency`'s minor unit (ISO 4217).
fn exponent(currency: &str) -> u32 {
    match currency {
        "bif" | "clp" | "djf" | "gnf" | "isk" | "jpy" | "kmf" | "krw" | "pyg" | "rwf" | "ugx"
        | "vnd" | "vuv" | "xaf" | "xof" | "xpf" => 0,
        "bhd" | "iqd" | "jod" | "kwd" | "lyd" | "omr" | "tnd" => 3,
        _ => 2,
    }
}

/// `USD 1,234.50` from minor units.
pub fn format_money(amount: i64, currency: &str) -> String {
    let digits = exponent(currency);
    let scale = 10_i64.pow(digits);
    let sign = if amount < 0 { "-" } else { "" };
    let magnitude = amount.unsigned_abs();
    let (whole, fraction) = (
        magnitude / scale.unsigned_abs(),
        magnitude % scale.unsigned_abs(),
    );
    let whole = whole.to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let code = currency.to_ascii_uppercase();
    if digits == 0 {
        format!("{code} {sign}{grouped}")
    } else {
        format!(
            "{code} {sign}{grouped}.{fraction:0width$}",
            width = digits as usize
        )
    }
}

fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(chars - 1).collect();
    short.push('…');
    short
}

/// Writes text on pages, starting a new page when one is full.
struct Pages<'a> {
    document: &'a mut Document,
    font: Font,
    /// The lines of the page being drawn: (x, y, size, text).
    pending: Vec<(f32, f32, f32, String)>,
    rules: Vec<f32>,
    y: f32,
}

impl Pages<'_> {
    fn text(&mut self, x: f32, size: f32, text: impl Into<String>) {
        self.pending.push((x, self.y, size, text.into()));
    }

    fn advance(&mut self, by: f32) {
        self.y += by;
        if self.y > BOTTOM {
            self.flush();
            self.y = MARGIN;
        }
    }

    fn rule(&mut self) {
        self.rules.push(self.y);
    }

    fn flush(&mut self) {
        let Some(settings) = PageSettings::from_wh(WIDTH, HEIGHT) else {
            return;
        };
        let mut page = self.document.start_page_with(settings);
        let mut surface = page.surface();
        surface.set_fill(Some(Fill {
            paint: rgb::Color::new(20, 20, 20).into(),
            opacity: NormalizedF32::ONE,
            rule: Default::default(),
        }));
        for (x, y, size, text) in self.pending.drain(..) {
            surface.draw_text(
                Point::from_xy(x, y),
                self.font.clone(),
                size,
                &text,
                false,
                TextDirection::Auto,
            );
        }
        surface.set_fill(None);
        surface.set_stroke(Some(Stroke {
            paint: rgb::Color::new(180, 180, 180).into(),
            width: 0.5,
            ..Default::default()
        }));
        for y in self.rules.drain(..) {
            let mut path = PathBuilder::new();
            path.move_to(MARGIN, y);
            path.line_to(WIDTH - MARGIN, y);
            if let Some(path) = path.finish() {
                surface.draw_path(&path);
            }
        }
        surface.finish();
        page.finish();
    }
}

/// The PDF of `invoice`, sold by `issuer` (its lines).
pub fn render(invoice: &InvoiceRow, issuer: &[String]) -> Result<Vec<u8>, PdfError> {
    let font = font().ok_or(PdfError::Font)?;
    let mut document = Document::new();
    let mut pages = Pages {
        document: &mut document,
        font,
        pending: Vec::new(),
        rules: Vec::new(),
        y: MARGIN + 10.0,
    };
    let money = |amount: i64| format_money(amount, &invoice.currency);
    let amount_x = WIDTH - MARGIN - 110.0;
    let quantity_x = amount_x - 50.0;

    pages.text(MARGIN, 22.0, "Invoice");
    pages.text(
        amount_x - 60.0,
        10.0,
        format!("No. {}", invoice.number.as_deref().unwrap_or("(draft)")),
    );
    pages.advance(16.0);
    pages.text(amount_x - 60.0, 10.0, format!("Status: {}", invoice.status));
    pages.advance(28.0);

    pages.text(MARGIN, 9.0, "From");
    pages.text(WIDTH / 2.0, 9.0, "Bill to");
    pages.advance(14.0);
    let customer: Vec<String> = match (&invoice.customer_name, &invoice.customer_email) {
        (None, None) => vec!["Deleted user".to_owned()],
        (name, email) => name.iter().chain(email.iter()).cloned().collect(),
    };
    for i in 0..issuer.len().max(customer.len()) {
        if let Some(line) = issuer.get(i) {
            pages.text(MARGIN, 10.5, shorten(line, 40));
        }
        if let Some(line) = customer.get(i) {
            pages.text(WIDTH / 2.0, 10.5, shorten(line, 40));
        }
        pages.advance(14.0);
    }
    pages.advance(14.0);

    pages.text(MARGIN, 10.0, format!("Issued: {}", date(invoice.issued_at)));
    pages.advance(14.0);
    if let (Some(start), Some(end)) = (invoice.period_start, invoice.period_end) {
        pages.text(
            MARGIN,
            10.0,
            format!("Period: {} to {}", date(start), date(end)),
        );
        pages.advance(14.0);
    }
    if let Some(paid) = invoice.paid_at {
        pages.text(MARGIN, 10.0, format!("Paid: {}", date(paid)));
        pages.advance(14.0);
    }
    pages.advance(16.0);

    pages.text(MARGIN, 9.0, "Description");
    pages.text(quantity_x, 9.0, "Qty");
    pages.text(amount_x, 9.0, "Amount");
    pages.advance(6.0);
    pages.rule();
    pages.advance(14.0);
    for InvoiceLine {
        description,
        quantity,
        amount,
        period_start,
        period_end,
    } in invoice.lines()
    {
        pages.text(MARGIN, 10.0, shorten(&description, DESCRIPTION_CHARS));
        pages.text(quantity_x, 10.0, quantity.to_string());
        pages.text(amount_x, 10.0, money(amount));
        if let (Some(start), Some(end)) = (period_start, period_end) {
            pages.advance(12.0);
            pages.text(
                MARGIN + 8.0,
                8.0,
                format!("{} to {}", date(start), date(end)),
            );
        }
        pages.advance(16.0);
    }
    pages.rule();
    pages.advance(16.0);
    for (label, amount, size) in [
        ("Subtotal", invoice.subtotal, 10.0),
        ("Tax", invoice.tax, 10.0),
        ("Total", invoice.total, 12.0),
        ("Amount paid", invoice.amount_paid, 10.0),
        ("Amount due", invoice.amount_due, 10.0),
    ] {
        pages.text(quantity_x - 60.0, size, label);
        pages.text(amount_x, size, money(amount));
        pages.advance(16.0);
    }
    pages.flush();
    document
        .finish()
        .map_err(|e| PdfError::Write(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_prints_in_the_currencys_minor_unit() {
        assert_eq!(format_money(123_450, "usd"), "USD 1,234.50");
        assert_eq!(format_money(5, "eur"), "EUR 0.05");
        assert_eq!(format_money(-2000, "gbp"), "GBP -20.00");
        assert_eq!(format_money(1_000_000, "jpy"), "JPY 1,000,000");
        assert_eq!(format_money(1_234, "kwd"), "KWD 1.234");
        assert_eq!(format_money(0, "usd"), "USD 0.00");
    }

    #[test]
    fn long_descriptions_are_shortened_on_a_character_boundary() {
        assert_eq!(shorten("Zoë", 3), "Zoë");
        assert_eq!(shorten("Łukasz Żółć", 6), "Łukas…");
    }
}
