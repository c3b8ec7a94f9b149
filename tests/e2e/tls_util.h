/*
 * tls_util.h — a self-signed certificate for 127.0.0.1 (and ::1, localhost)
 * made with OpenSSL, written as PEM key and certificate files, for the
 * HTTPS tests (clients verify it: it is their CA file); a file replaced as a
 * secret volume replaces it; a health check that trusts one CA file.
 */
#ifndef SL_TESTS_TLS_UTIL_H
#define SL_TESTS_TLS_UTIL_H

#include "harness.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* key and cert: "/tmp/name-XXXXXX" templates, rewritten with the files made. */
static inline bool tls_make_cert(char *key, char *cert) {
    if (!sl_test_temp_file(key, NULL) || !sl_test_temp_file(cert, NULL)) return false;
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    bool ok = pk && x && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
              X509_gmtime_adj(X509_getm_notBefore(x), -3600) && X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
              X509_set_pubkey(x, pk);
    X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
    ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0) &&
         X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *san = ok ? X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost") : NULL;
    X509_EXTENSION *bc = ok ? X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE") : NULL;
    ok = ok && san && bc && X509_add_ext(x, san, -1) && X509_add_ext(x, bc, -1) && X509_sign(x, pk, EVP_sha256()) > 0;
    X509_EXTENSION_free(san);
    X509_EXTENSION_free(bc);
    FILE *kf = ok ? fopen(key, "w") : NULL, *cf = ok ? fopen(cert, "w") : NULL;
    ok = ok && kf && cf && PEM_write_PrivateKey(kf, pk, NULL, NULL, 0, NULL, NULL) && PEM_write_X509(cf, x);
    if (kf) fclose(kf);
    if (cf) fclose(cf);
    X509_free(x);
    EVP_PKEY_free(pk);
    return ok;
}

/* enc ("/tmp/name-XXXXXX", rewritten): key's private key again, encrypted with pass (PKCS#8, AES-256-CBC, as
 * `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it: "-----BEGIN ENCRYPTED PRIVATE KEY-----"). */
static inline bool tls_encrypt_key(const char *key, char *enc, const char *pass) {
    if (!sl_test_temp_file(enc, NULL)) return false;
    FILE *in = fopen(key, "r"), *out = fopen(enc, "w");
    EVP_PKEY *pk = in ? PEM_read_PrivateKey(in, NULL, NULL, (void *)"") : NULL;
    const bool ok = pk && out &&
                    PEM_write_PKCS8PrivateKey(out, pk, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)pass) == 1;
    if (in) fclose(in);
    if (out) fclose(out);
    EVP_PKEY_free(pk);
    return ok;
}

/* dst becomes a copy of src (text: a PEM file) as a secret volume's update makes it, by a rename; src NULL:
 * text instead. */
static inline bool tls_replace(const char *dst, const char *src, const char *text) {
    char tmp[512], buf[16384];
    snprintf(tmp, sizeof tmp, "%s.new", dst);
    FILE *in = src ? fopen(src, "r") : NULL, *out = fopen(tmp, "w");
    size_t n = in ? fread(buf, 1, sizeof buf, in) : strlen(text);
    bool ok = out && (in || !src) && fwrite(in ? buf : text, 1, n, out) == n;
    if (in) fclose(in);
    if (out) ok = fclose(out) == 0 && ok;
    return ok && rename(tmp, dst) == 0;
}

static inline size_t tls_discard(char *p, size_t sz, size_t nm, void *ud) {
    (void)p, (void)ud;
    return sz * nm;
}

/* The files of an --enable-ssl-refresh test: two certificates (ka / ca, kb / cb), the files served (key / cert,
 * copies of the first) and a log file; every argument a "/tmp/name-XXXXXX" template, rewritten. */
static inline bool tls_refresh_files(char *ka, char *ca, char *kb, char *cb, char *key, char *cert, char *log) {
    return tls_make_cert(ka, ca) && tls_make_cert(kb, cb) && sl_test_temp_file(key, NULL) && sl_test_temp_file(cert, NULL) &&
           sl_test_temp_file(log, NULL) && tls_replace(key, ka, NULL) && tls_replace(cert, ca, NULL);
}

/* Whether GET base/health over TLS verifies against CA file ca and answers 200. */
static inline bool tls_health_with(const char *base, const char *ca) {
    CURL *h = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/health", base);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tls_discard);
    long status = 0;
    const bool ok = curl_easy_perform(h) == CURLE_OK && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK;
    curl_easy_cleanup(h);
    return ok && status == 200;
}

/* --enable-ssl-refresh against a server at url serving key / cert (made from ka / ca): it serves the certificate of
 * ca and not that of cb; with cert broken it still does; with kb / cb swapped in it serves cb's within 5 s and no
 * longer ca's. False with what went wrong in why. */
static inline bool tls_refresh_works(const char *url, const char *ca, const char *kb, const char *cb, const char *key,
                                     const char *cert, char *why, size_t cap) {
    if (!tls_health_with(url, ca) || tls_health_with(url, cb)) return snprintf(why, cap, "not the first certificate"), false;
    if (!tls_replace(cert, NULL, "not a certificate\n")) return snprintf(why, cap, "cannot write %s", cert), false;
    usleep(1500 * 1000);
    if (!tls_health_with(url, ca)) return snprintf(why, cap, "a broken file was taken"), false;
    if (!tls_replace(key, kb, NULL) || !tls_replace(cert, cb, NULL)) return snprintf(why, cap, "cannot swap"), false;
    bool renewed = false;
    for (int i = 0; i < 50 && !renewed; i++) {
        usleep(100 * 1000);
        renewed = tls_health_with(url, cb);
    }
    if (!renewed || tls_health_with(url, ca)) return snprintf(why, cap, "the renewed certificate was not served"), false;
    return true;
}

#endif
