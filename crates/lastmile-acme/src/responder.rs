/// Serves http-01 key authorizations at `http://<host>/.well-known/acme-challenge/<token>`.
///
/// The server implements it with the router's challenge store. Both methods are called from
/// async code and must return quickly (no network, no long locks).
pub trait Http01Responder: Send + Sync {
    /// Starts answering `GET /.well-known/acme-challenge/<token>` with `key_authorization`
    /// (as `text/plain` or `application/octet-stream`, body exactly the string).
    fn publish(&self, token: &str, key_authorization: &str);

    /// Stops answering for `token`. Called for every published token once the order is over,
    /// whether it succeeded, failed or was cancelled.
    fn withdraw(&self, token: &str);
}

/// Withdraws every token it published when dropped, so a failed, timed-out or cancelled
/// issuance leaves nothing behind.
pub(crate) struct PublishedTokens<'a> {
    responder: &'a dyn Http01Responder,
    tokens: Vec<String>,
}

impl<'a> PublishedTokens<'a> {
    pub(crate) fn new(responder: &'a dyn Http01Responder) -> Self {
        Self {
            responder,
            tokens: Vec::new(),
        }
    }

    pub(crate) fn publish(&mut self, token: &str, key_authorization: &str) {
        self.responder.publish(token, key_authorization);
        self.tokens.push(token.to_string());
    }
}

impl Drop for PublishedTokens<'_> {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.responder.withdraw(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct RecordingResponder {
        calls: Mutex<Vec<String>>,
    }

    impl Http01Responder for RecordingResponder {
        fn publish(&self, token: &str, key_authorization: &str) {
            let call = format!("publish {token} {key_authorization}");
            self.calls.lock().expect("lock").push(call);
        }
        fn withdraw(&self, token: &str) {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("withdraw {token}"));
        }
    }

    #[test]
    fn every_published_token_is_withdrawn_when_the_order_ends() {
        let recorded = RecordingResponder::default();
        {
            let mut published = PublishedTokens::new(&recorded);
            published.publish("token-a", "token-a.thumb");
            published.publish("token-b", "token-b.thumb");
        }
        assert_eq!(
            *recorded.calls.lock().expect("lock"),
            [
                "publish token-a token-a.thumb",
                "publish token-b token-b.thumb",
                "withdraw token-a",
                "withdraw token-b"
            ]
        );
    }
}
