//! The platform's event crypto: AES-256-CBC bodies, SHA-256 event signatures, SHA-1 card
//! signatures. Every input, of any size or content, gives a value or a typed error, never a panic.
//!
//! - Encrypted bodies are `{"encrypt":"<base64>"}`; the key is SHA-256 of the Encrypt Key, the
//!   IV the first 16 bytes of the decoded data, padding PKCS#7.
//! - Event signature: `hex(SHA-256(timestamp + nonce + encrypt_key + raw body))`.
//! - Old-style card signature: `hex(SHA-1(timestamp + nonce + verification_token + raw body))`.
//!
//! Signatures are always computed over the raw bytes as received and compared in constant time.
//!
//! ```
//! use lark_events::crypto::Cipher;
//!
//! let cipher = Cipher::new("test key");
//! let plain = cipher.decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap();
//! assert_eq!(&plain[..], b"hello world");
//! ```

use std::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use base64::Engine;
use bytes::Bytes;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256Dec>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256Enc>;

const BLOCK: usize = 16;

/// Why an encrypted body could not be decrypted. Never shows the key or the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CryptoError {
    /// The text is not valid standard base64.
    Base64,
    /// The decoded data is shorter than an IV plus one block, or not a whole number of blocks.
    Length,
    /// The PKCS#7 padding is wrong: the data is corrupt or the Encrypt Key is not the one used.
    Padding,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CryptoError::Base64 => "encrypted body is not valid base64",
            CryptoError::Length => "encrypted body has an invalid length",
            CryptoError::Padding => "encrypted body has invalid padding (wrong Encrypt Key or corrupt data)",
        })
    }
}

impl std::error::Error for CryptoError {}

/// An Encrypt Key made ready for use: its SHA-256 and the AES key schedules are computed once.
/// `Debug` hides it.
#[derive(Clone)]
pub struct Cipher {
    decrypt: aes::Aes256Dec,
    encrypt: aes::Aes256Enc,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    /// A cipher for the Encrypt Key from the developer console.
    pub fn new(encrypt_key: &str) -> Cipher {
        let key: [u8; 32] = Sha256::digest(encrypt_key.as_bytes()).into();
        Cipher { decrypt: aes::Aes256Dec::new(&key.into()), encrypt: aes::Aes256Enc::new(&key.into()) }
    }

    /// Decrypts the base64 text of an `{"encrypt": ...}` body.
    pub fn decrypt(&self, encrypted: &str) -> Result<Bytes, CryptoError> {
        self.decrypt_bytes(encrypted.as_bytes())
    }

    /// [`decrypt`](Self::decrypt) of base64 text given as bytes (anything outside the base64
    /// alphabet is refused as [`CryptoError::Base64`]).
    pub(crate) fn decrypt_bytes(&self, encrypted: &[u8]) -> Result<Bytes, CryptoError> {
        let mut data = Vec::with_capacity(encrypted.len() / 4 * 3 + 3);
        base64::engine::general_purpose::STANDARD
            .decode_vec(encrypted, &mut data)
            .map_err(|_| CryptoError::Base64)?;
        if data.len() < 2 * BLOCK || data.len() % BLOCK != 0 {
            return Err(CryptoError::Length);
        }
        let (iv, body) = data.split_at_mut(BLOCK);
        let iv: [u8; BLOCK] = (*iv).try_into().map_err(|_| CryptoError::Length)?;
        let plain_len = Aes256CbcDec::inner_iv_init(self.decrypt.clone(), &iv.into())
            .decrypt_padded_mut::<Pkcs7>(body)
            .map_err(|_| CryptoError::Padding)?
            .len();
        // The plaintext sits after the IV: hand it out without copying.
        Ok(Bytes::from(data).slice(BLOCK..BLOCK + plain_len))
    }

    /// Encrypts `plain` as the platform does, with a fresh IV, and returns the base64 text.
    ///
    /// For tests and the testkit: the IV comes from a fast non-cryptographic generator.
    pub fn encrypt(&self, plain: &[u8]) -> String {
        let mut iv = [0u8; BLOCK];
        iv.iter_mut().for_each(|b| *b = fastrand::u8(..));
        self.encrypt_with_iv(plain, iv)
    }

    /// Encrypts `plain` with the given IV and returns the base64 text (deterministic).
    pub fn encrypt_with_iv(&self, plain: &[u8], iv: [u8; BLOCK]) -> String {
        let sealed = Aes256CbcEnc::inner_iv_init(self.encrypt.clone(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plain);
        let mut data = Vec::with_capacity(BLOCK + sealed.len());
        data.extend_from_slice(&iv);
        data.extend_from_slice(&sealed);
        base64::engine::general_purpose::STANDARD.encode(data)
    }
}

/// Decrypts the base64 text of an `{"encrypt": ...}` body with the Encrypt Key.
pub fn decrypt(encrypt_key: &str, encrypted: &str) -> Result<Bytes, CryptoError> {
    Cipher::new(encrypt_key).decrypt(encrypted)
}

/// Encrypts `plain` with the Encrypt Key as the platform does (fresh IV); returns base64 text.
pub fn encrypt(encrypt_key: &str, plain: &[u8]) -> String {
    Cipher::new(encrypt_key).encrypt(plain)
}

fn digest_parts<D: Digest>(timestamp: &str, nonce: &str, secret: &str, body: &[u8]) -> impl AsRef<[u8]> {
    let mut d = D::new();
    d.update(timestamp.as_bytes());
    d.update(nonce.as_bytes());
    d.update(secret.as_bytes());
    d.update(body);
    d.finalize()
}

/// The event signature: `hex(SHA-256(timestamp + nonce + encrypt_key + body))`, lowercase.
pub fn event_signature(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    hex::encode(digest_parts::<Sha256>(timestamp, nonce, encrypt_key, body))
}

/// The old-style card signature: `hex(SHA-1(timestamp + nonce + verification_token + body))`.
pub fn card_signature(timestamp: &str, nonce: &str, verification_token: &str, body: &[u8]) -> String {
    hex::encode(digest_parts::<Sha1>(timestamp, nonce, verification_token, body))
}

/// Compares a hex signature with a digest in constant time (either hex case is accepted).
///
/// The digest is written as lowercase hex and the given text lowercased (its timing tells only
/// about the given text, which the sender knows); the two are then compared in constant time.
fn matches(signature: &str, digest: &[u8]) -> bool {
    let given = signature.trim().as_bytes();
    let mut expected = [0u8; 64];
    let Some(expected) = expected.get_mut(..digest.len() * 2) else { return false };
    if given.len() != expected.len() || hex::encode_to_slice(digest, expected).is_err() {
        return false;
    }
    // Lowercase what was given (ASCII only, so other bytes stay different) and compare.
    let mut lower = [0u8; 64];
    let lower = &mut lower[..given.len()];
    for (l, g) in lower.iter_mut().zip(given) {
        *l = g.to_ascii_lowercase();
    }
    bytes_eq(lower, expected)
}

/// Equality of two byte strings in constant time for a given length (the lengths may leak,
/// the contents do not): the differences are folded into one word, tested once.
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| c.iter().fold(0u64, |w, &x| w << 8 | u64::from(x));
    let (a_words, b_words) = (a.chunks(8), b.chunks(8));
    let diff = a_words.zip(b_words).fold(0u64, |acc, (x, y)| acc | (word(x) ^ word(y)));
    bool::from(diff.ct_eq(&0))
}

/// Whether `signature` is the event signature of `body` (constant-time comparison).
pub fn verify_event_signature(
    timestamp: &str,
    nonce: &str,
    encrypt_key: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    matches(signature, digest_parts::<Sha256>(timestamp, nonce, encrypt_key, body).as_ref())
}

/// Whether `signature` is the old-style card signature of `body` (constant-time comparison).
pub fn verify_card_signature(
    timestamp: &str,
    nonce: &str,
    verification_token: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    matches(signature, digest_parts::<Sha1>(timestamp, nonce, verification_token, body).as_ref())
}

/// Constant-time equality of two secrets (their lengths may leak, their contents do not).
pub(crate) fn secret_eq(a: &str, b: &str) -> bool {
    bytes_eq(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vector() {
        let plain = decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap();
        assert_eq!(&plain[..], b"hello world");
    }

    #[test]
    fn encrypt_with_iv_reproduces_the_known_vector() {
        let data = base64::engine::general_purpose::STANDARD
            .decode("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")
            .unwrap();
        let iv: [u8; 16] = data[..16].try_into().unwrap();
        let sealed = Cipher::new("test key").encrypt_with_iv(b"hello world", iv);
        assert_eq!(sealed, "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=");
    }

    #[test]
    fn round_trips_every_length_around_the_block_size() {
        let cipher = Cipher::new("k");
        for n in 0..=48 {
            let plain: Vec<u8> = (0..n as u8).collect();
            assert_eq!(&cipher.decrypt(&cipher.encrypt(&plain)).unwrap()[..], &plain[..], "length {n}");
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let c = Cipher::new("test key");
        assert_eq!(c.decrypt("not base64!").unwrap_err(), CryptoError::Base64);
        assert_eq!(c.decrypt("").unwrap_err(), CryptoError::Length);
        // One block only: an IV with no data.
        assert_eq!(c.decrypt("AAAAAAAAAAAAAAAAAAAAAA==").unwrap_err(), CryptoError::Length);
        // 33 bytes: not whole blocks.
        let odd = base64::engine::general_purpose::STANDARD.encode([7u8; 33]);
        assert_eq!(c.decrypt(&odd).unwrap_err(), CryptoError::Length);
        // The right shape under another key: the padding check fails.
        let other = Cipher::new("another key").encrypt(b"hello world");
        assert_eq!(c.decrypt(&other).unwrap_err(), CryptoError::Padding);
        assert!(!CryptoError::Padding.to_string().contains("test key"));
    }

    // Reference values computed outside Rust:
    //   printf '%s' '1700000000nonce-1my-key{"a": "é"}' | sha256sum
    //   printf '%s' '1700000000nonce-1my-token{"a": "é"}' | sha1sum
    const BODY: &str = "{\"a\": \"é\"}";

    #[test]
    fn event_signature_matches_a_reference() {
        let sig = event_signature("1700000000", "nonce-1", "my-key", BODY.as_bytes());
        assert_eq!(sig, "6fadc50c0704d69b86242a04c84132ab7950317ee61c5d4fa1fe826da5baac1a");
        assert!(verify_event_signature("1700000000", "nonce-1", "my-key", BODY.as_bytes(), &sig));
        assert!(verify_event_signature(
            "1700000000",
            "nonce-1",
            "my-key",
            BODY.as_bytes(),
            &sig.to_uppercase()
        ));
    }

    #[test]
    fn card_signature_matches_a_reference() {
        let sig = card_signature("1700000000", "nonce-1", "my-token", BODY.as_bytes());
        assert_eq!(sig, "424a9adb63a108f011994dab645aa2dfce1ef197");
        assert!(verify_card_signature("1700000000", "nonce-1", "my-token", BODY.as_bytes(), &sig));
    }

    #[test]
    fn signatures_reject_changes_and_garbage() {
        let body = BODY.as_bytes();
        let sig = event_signature("1", "n", "k", body);
        assert!(!verify_event_signature("2", "n", "k", body, &sig), "timestamp");
        assert!(!verify_event_signature("1", "m", "k", body, &sig), "nonce");
        assert!(!verify_event_signature("1", "n", "j", body, &sig), "key");
        assert!(!verify_event_signature("1", "n", "k", b"{\"a\":\"\xc3\xa9\"}", &sig), "re-serialised body");
        for garbage in ["", "zz", &sig[..62], &format!("{sig}00"), "é"] {
            assert!(!verify_event_signature("1", "n", "k", body, garbage), "{garbage:?}");
        }
        let card = card_signature("1", "n", "t", body);
        assert!(!verify_card_signature("1", "n", "t", body, &sig), "a SHA-256 is not a SHA-1");
        assert!(!verify_event_signature("1", "n", "k", body, &card), "a SHA-1 is not a SHA-256");
    }

    #[test]
    fn a_change_at_any_position_of_a_signature_is_refused() {
        let body = BODY.as_bytes();
        let sig = event_signature("1", "n", "k", body);
        assert!(verify_event_signature("1", "n", "k", body, &format!("  {sig}\t")), "surrounding space");
        for at in 0..sig.len() {
            for c in ['0', '9', 'a', 'f', 'A', 'F', 'g', 'G', ' ', '\u{13}'] {
                let mut changed = sig.clone().into_bytes();
                changed[at] = c as u8;
                let changed = String::from_utf8(changed).unwrap();
                let same = changed.eq_ignore_ascii_case(&sig);
                assert_eq!(verify_event_signature("1", "n", "k", body, &changed), same, "{changed:?}");
            }
        }
    }

    #[test]
    fn bytes_eq_compares_every_byte_and_the_length() {
        let a = b"0123456789abcdefghij";
        assert!(bytes_eq(a, a) && bytes_eq(b"", b""));
        for at in 0..a.len() {
            let mut b = *a;
            b[at] ^= 0x01;
            assert!(!bytes_eq(a, &b), "byte {at}");
        }
        assert!(!bytes_eq(&a[..19], a) && !bytes_eq(a, &a[..8]));
        assert!(secret_eq("token", "token") && !secret_eq("token", "tokeN") && !secret_eq("token", "token "));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", Cipher::new("super-secret-key")), "Cipher([redacted])");
    }

    proptest! {
        #[test]
        fn encrypt_then_decrypt_is_identity(key in ".{0,40}", plain in proptest::collection::vec(any::<u8>(), 0..600)) {
            let cipher = Cipher::new(&key);
            prop_assert_eq!(&cipher.decrypt(&cipher.encrypt(&plain)).unwrap()[..], &plain[..]);
        }

        #[test]
        fn decrypt_never_panics_on_text(text in ".{0,300}") {
            let _ = Cipher::new("k").decrypt(&text);
        }

        #[test]
        fn decrypt_never_panics_on_base64_of_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = base64::engine::general_purpose::STANDARD.encode(&data);
            let result = Cipher::new("k").decrypt(&text);
            if data.len() < 32 || data.len() % 16 != 0 {
                prop_assert_eq!(result.unwrap_err(), CryptoError::Length);
            }
        }

        #[test]
        fn verify_never_panics(sig in ".{0,80}", body in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = verify_event_signature("1", "n", "k", &body, &sig);
            let _ = verify_card_signature("1", "n", "t", &body, &sig);
        }
    }
}
