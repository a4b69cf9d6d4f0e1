//! The test SMTP server speaks SMTP to a real client, so later tests can read
//! the links in the mail the app sends.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::header::ContentType,
};

use crate::helpers::SmtpSink;

#[tokio::test]
async fn the_smtp_sink_receives_mail_from_a_real_client() {
    let sink = SmtpSink::start().await;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.address.port())
        .build();
    let message = Message::builder()
        .from("rabt <no-reply@rabt.test>".parse().unwrap())
        .to("alice@rabt.test".parse().unwrap())
        .subject("Verify your email")
        .header(ContentType::TEXT_PLAIN)
        .body("Open https://app.rabt.test/auth/verify-email?token=abc\n.leading dot".to_owned())
        .unwrap();
    transport.send(message).await.unwrap();

    let mail = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail[0].from, "no-reply@rabt.test");
    assert_eq!(mail[0].to, vec!["alice@rabt.test"]);
    assert!(mail[0].data.contains("Subject: Verify your email"));
    assert!(mail[0].data.contains("verify-email?token=abc"));
    assert!(mail[0].data.contains("\n.leading dot"), "dot-unstuffed");
}
