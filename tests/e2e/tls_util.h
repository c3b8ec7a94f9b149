/*
 * tls_util.h — a self-signed certificate for 127.0.0.1 (and ::1, localhost)
 * made with OpenSSL, written as PEM key and certificate files, for the
 * HTTPS tests (clients verify it: it is their CA file).
 */
#ifndef SL_TESTS_TLS_UTIL_H
#define SL_TESTS_TLS_UTIL_H

#include "harness.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>

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

#endif
