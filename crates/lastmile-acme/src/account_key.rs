//! The account key: ECDSA P-256, signing JWS with ES256 (RFC 7515, RFC 8555 §6.2).

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::error::AcmeError;

pub(crate) struct AccountKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    /// The public key as a JWK with its members in lexicographic order and no whitespace: the
    /// exact input of the RFC 7638 thumbprint.
    jwk: String,
    thumbprint: String,
}

/// How a request names its signer: the key itself (account creation and lookup) or the
/// account URL (everything else), RFC 8555 §6.2.
#[derive(Clone, Copy)]
pub(crate) enum Signer<'a> {
    Jwk,
    Kid(&'a str),
}

impl AccountKey {
    pub(crate) fn generate() -> Result<Self, AcmeError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| AcmeError::Crypto("generate an account key".to_string()))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| AcmeError::Crypto("serialize the account key".to_string()))?
            .as_ref()
            .to_vec();
        Self::from_pair(pair, pkcs8)
    }

    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|error| format!("not a P-256 PKCS#8 key: {error}"))?;
        Self::from_pair(pair, pkcs8.to_vec()).map_err(|error| error.to_string())
    }

    fn from_pair(pair: EcdsaKeyPair, pkcs8: Vec<u8>) -> Result<Self, AcmeError> {
        // An uncompressed SEC1 point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(AcmeError::Crypto(
                "read the account key's public point".to_string(),
            ));
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let jwk = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = URL_SAFE_NO_PAD.encode(digest(&SHA256, jwk.as_bytes()));
        Ok(Self {
            pair,
            pkcs8,
            jwk,
            thumbprint,
        })
    }

    pub(crate) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// base64url(SHA-256(JWK)), RFC 7638: the second half of every key authorization.
    pub(crate) fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The flattened JWS JSON for a POST to `url`; `payload` `None` is POST-as-GET.
    pub(crate) fn sign(
        &self,
        url: &str,
        nonce: &str,
        signer: Signer<'_>,
        payload: Option<&[u8]>,
    ) -> Result<Vec<u8>, AcmeError> {
        let mut protected = json!({ "alg": "ES256", "nonce": nonce, "url": url });
        match signer {
            Signer::Jwk => {
                let jwk: serde_json::Value = serde_json::from_str(&self.jwk)
                    .map_err(|_| AcmeError::Crypto("encode the account JWK".to_string()))?;
                protected["jwk"] = jwk;
            }
            Signer::Kid(account_url) => protected["kid"] = json!(account_url),
        }
        let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
        let payload = payload.map_or_else(String::new, |payload| URL_SAFE_NO_PAD.encode(payload));
        let signing_input = format!("{protected}.{payload}");
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| AcmeError::Crypto("sign a request with the account key".to_string()))?;
        let body = json!({
            "protected": protected,
            "payload": payload,
            "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
        });
        Ok(body.to_string().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    use super::*;

    #[test]
    fn signature_verifies_and_the_key_round_trips_through_pkcs8() {
        let key = AccountKey::generate().expect("a key");
        let body = key
            .sign(
                "https://ca.test/new-order",
                "nonce-1",
                Signer::Kid("https://ca.test/acct/1"),
                Some(b"{}"),
            )
            .expect("a JWS");
        let jws: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let protected = jws["protected"].as_str().expect("protected");
        let payload = jws["payload"].as_str().expect("payload");
        let signature = URL_SAFE_NO_PAD
            .decode(jws["signature"].as_str().expect("signature"))
            .expect("base64url");
        assert_eq!(signature.len(), 64, "ES256 is r||s, 32 bytes each");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.pair.public_key().as_ref())
            .verify(format!("{protected}.{payload}").as_bytes(), &signature)
            .expect("the signature verifies");
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected).expect("base64url"))
                .expect("JSON header");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "https://ca.test/acct/1");
        assert_eq!(header["nonce"], "nonce-1");

        let again = AccountKey::from_pkcs8(key.pkcs8()).expect("the stored key loads");
        assert_eq!(again.thumbprint(), key.thumbprint());
        assert_eq!(again.jwk, key.jwk);
    }

    #[test]
    fn post_as_get_has_an_empty_payload_and_account_creation_carries_the_jwk() {
        let key = AccountKey::generate().expect("a key");
        let body = key
            .sign("https://ca.test/order/1", "n", Signer::Jwk, None)
            .expect("a JWS");
        let jws: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(jws["payload"], "");
        let protected = URL_SAFE_NO_PAD
            .decode(jws["protected"].as_str().expect("protected"))
            .expect("base64url");
        let header: serde_json::Value = serde_json::from_slice(&protected).expect("JSON");
        assert_eq!(header["jwk"]["kty"], "EC");
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert!(header.get("kid").is_none());
        // RFC 7638: the thumbprint is over the members crv, kty, x, y in that order.
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
            header["jwk"]["x"], header["jwk"]["y"]
        );
        assert_eq!(
            key.thumbprint(),
            URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()))
        );
    }

    #[test]
    fn garbage_is_not_an_account_key() {
        assert!(AccountKey::from_pkcs8(b"not a key").is_err());
    }
}
