/*
 * test_hash.c -- password hash formats: known vectors for each, hostile
 * stored strings, upgrade decisions, new argon2id hashes, EMQX import.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <crypt.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exhook/hash.h"

/* A string literal as (pointer, length), so embedded NULs survive. */
#define S(lit) lit, sizeof(lit) - 1

/* Small argon2id costs so the suite stays fast. */
static const exh_hash_params small = {64, 1, 1};

/* ---- known vectors ------------------------------------------------------- */

typedef struct {
    const char *hash;
    const char *pw;
    size_t pwlen;
    const char *wrong; /* a password that must not match */
    exh_hash_alg alg;
} vector;

/* Real `mosquitto_passwd -b` output (Debian mosquitto 2.0.11). */
#define M7_ALICE                                                                                   \
    "$7$101$srrY0XUD0h1b/jJu$6eCO88rsflxy9QZfnfMeW1GXp1vOM+6AFyww1xldGZVtIS7hQLK+wv5eK5J8QAoL8b0"  \
    "cFGTF1YKRMnVgWn6qaw=="
#define M6_ALICE                                                                                   \
    "$6$2xuDTfQuuh6i6L9L$HndMbPR/7kXMi/m7QCDKAylzm0LZa7fVsPzYG3GUAq6+dS0lVHAXCv3RpoFtb1VWAJa9z8oU" \
    "DZ1pNPtebYm6cw=="
#define M7_CAROL /* the empty password */                                                          \
    "$7$101$Ga11/w/"                                                                               \
    "V+30U3bw2$q23MnvHQieAs1sPnarb5JDFRCX67R5sIyFiAiYEu3hktzdB24h2rs5jgFX01genGfmzYr"              \
    "OwipWU/GX7kfmh/Uw=="
#define BOB_PW "p@ss:w$rd \xc3\xbc" /* "p@ss:w$rd ü" in UTF-8 */

static const vector vectors[] = {
    /* argon2id: the reference implementation's test.c (phc-winner-argon2) */
    {"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
     S("password"), "passwore", EXH_HASH_ARGON2ID},
    {"$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc",
     S("password"), "Password", EXH_HASH_ARGON2ID},
    {"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
     S("password"), "", EXH_HASH_ARGON2ID},
    /* argon2id_hash_encoded(t=1, m=64, p=1, "hunter2", salt "exhook-salt-0001") */
    {"$argon2id$v=19$m=64,t=1,p=1$ZXhob29rLXNhbHQtMDAwMQ$0I+"
     "MJ4K3ZrhFjom67vK3B1uCDpQME3BNnfUdLMWLBVM",
     S("hunter2"), "hunter3", EXH_HASH_ARGON2ID},

    /* PBKDF2-HMAC-SHA256/512, the widely published "password"/"salt" vectors
     * (120fb6cf..., c5e478d5..., 867f70cf..., d197b1b3...) and RFC 7914 §11's
     * 40-byte one, re-encoded as PHC strings */
    {"$pbkdf2-sha256$i=1$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs", S("password"),
     "password ", EXH_HASH_PBKDF2_SHA256},
    {"$pbkdf2-sha256$i=1$c2FsdA==$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs=", S("password"),
     "passwor", EXH_HASH_PBKDF2_SHA256},
    {"$pbkdf2-sha256$i=1,l=32$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs", S("password"),
     "", EXH_HASH_PBKDF2_SHA256},
    {"$pbkdf2-sha256$i=4096$c2FsdA$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o", S("password"),
     "PASSWORD", EXH_HASH_PBKDF2_SHA256},
    {"$pbkdf2-sha256$i=4096$c2FsdFNBTFRzYWx0U0FMVHNhbHRTQUxUc2FsdFNBTFRzYWx0$"
     "NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+HGNVGMfaxH6Q",
     S("passwordPASSWORDpassword"), "passwordPASSWORDpasswor", EXH_HASH_PBKDF2_SHA256},
    {"$pbkdf2-sha512$i=1$c2FsdA$hn9wzxreAs/zdSWZo6U9xK80x6ZpgVrl1RNVThyM8lLALUcKKFoFAbrZmb/"
     "pQ8CPBQI119aLHaVeY/c7YKV/zg",
     S("password"), "password\n", EXH_HASH_PBKDF2_SHA512},
    {"$pbkdf2-sha512$i=4096$c2FsdA$0Zexsz2wFD4BixLz0dFHnmzevcyXxcD4f2kC4HL0V7UUPzBgJkGz1VzTNZiMs2uE"
     "N2Bg7NUy4Dm3QqI5Q0ry1Q",
     S("password"), "passworD", EXH_HASH_PBKDF2_SHA512},
    /* a binary salt, a truncated (32-byte) tag */
    {"$pbkdf2-sha512$i=1000$AAEC/v8$AABpkr3AEooqK8FQFIjnHe+bRqTdJxXs/kxk8sLsz4s", S("hunter2"),
     "hunter", EXH_HASH_PBKDF2_SHA512},

    /* bcrypt: Openwall crypt_blowfish's test vectors (wrapper.c) */
    {"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", S("U*U"), "U*U*",
     EXH_HASH_BCRYPT},
    {"$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK", S("U*U*"), "U*U",
     EXH_HASH_BCRYPT},
    {"$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a", S("U*U*U"), "U*U*u",
     EXH_HASH_BCRYPT},
    {"$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy", S(""), "U", EXH_HASH_BCRYPT},
    {"$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",
     S("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are "
       "ignored"),
     "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345678", EXH_HASH_BCRYPT},
    {"$2y$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e", S("\xff\xff\xa3"),
     "\xff\xff\xa4", EXH_HASH_BCRYPT},
    {"$2b$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e", S("\xff\xff\xa3"), "\xff\xff",
     EXH_HASH_BCRYPT},

    /* Mosquitto $7$ (default) and $6$ (-H sha512), from mosquitto_passwd */
    {M7_ALICE, S("correct horse"), "correct horse ", EXH_HASH_MOSQ_PBKDF2},
    {"$7$101$SXn0bpOlCCJqfgc8$kag4kyrqjzuD6aF2Kr56Lh2t8lGQTpg7HFkUVwpAjP7RLgsfTNeci5c+TNryZrOzAH4sl"
     "cQEsnj7Xx4siADCpQ==",
     S(BOB_PW), "p@ss:w$rd u", EXH_HASH_MOSQ_PBKDF2},
    {M7_CAROL, S(""), " ", EXH_HASH_MOSQ_PBKDF2},
    {M6_ALICE, S("correct horse"), "correct", EXH_HASH_MOSQ_SHA512},
    {"$6$MfOlAdLZExOTCOys$o0cKvMLHYvgvTJ4QxEL5XkkjViLVON5ZSuvUzML196wA383XX3uqgkuyv3PTsGlm8gqg5pRc9"
     "pwtTyeMHeG3Hw==",
     S(BOB_PW), "", EXH_HASH_MOSQ_SHA512},
    {"$6$WlUGVz5ZD8uMjJaG$y+/+albEpiKcX4bcKVAJqcsnpfS210IrrpSwJL8Ce07swQY1yoY5eMJ7RBNmN4gugTOOmy6NX"
     "3uKeU55sr/CSA==",
     S("x"), "X", EXH_HASH_MOSQ_SHA512},

    /* EMQX: salt "slat_foo123", password "public".  The sha256/suffix value
     * is the one in EMQX's Redis authentication docs; the rest from
     * `printf '%s' slat_foo123public | sha256sum` and friends. */
    {"$emqx-sha256$suffix$c2xhdF9mb28xMjM$"
     "44edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942f"
     "c5abb5",
     S("public"), "publiC", EXH_HASH_EMQX_SHA256},
    {"$emqx-sha256$suffix$c2xhdF9mb28xMjM=$44EDC2D57CDE8D79C98145003E105B90A14F1460B79186EA9CFE8394"
     "2FC5ABB5",
     S("public"), "slat_foo123public", EXH_HASH_EMQX_SHA256},
    {"$emqx-sha256$prefix$c2xhdF9mb28xMjM$"
     "ae45b69fb70eaf222721b8b748eab19255d37b246eff0906eea8a7fed5"
     "1b3000",
     S("public"), "", EXH_HASH_EMQX_SHA256},
    {"$emqx-sha512$prefix$c2xhdF9mb28xMjM$"
     "eb5319143b7ae42dce0ffd75f0b1c6466bb258f8c6f819cf8509034ef7"
     "d206f5c0c116e958a37e8129ae433615e06b7dd88b272fcd4a6e1299fbb593888ffeef",
     S("public"), "public ", EXH_HASH_EMQX_SHA512},
    {"$emqx-sha512$suffix$c2xhdF9mb28xMjM$"
     "e907445054ea0ce6ffb211834a89f0810252c871f82dea2656ea07c3ff"
     "b86de1bbce83c5fe698a27b90b8dda9f372fd0dc39693543e80154404a774e2d42e174",
     S("public"), "publi", EXH_HASH_EMQX_SHA512},
    /* EMQX without a salt (salt_position = disable): `printf '%s' secret | sha256sum` */
    {"$emqx-sha256$prefix$$2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b",
     S("secret"), "secreT", EXH_HASH_EMQX_SHA256},
};

static void test_known_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector *v = &vectors[i];
        if (exh_hash_identify(v->hash) != v->alg ||
            exh_hash_verify(v->hash, v->pw, v->pwlen) != EXH_VERIFY_OK ||
            exh_hash_verify(v->hash, v->wrong, strlen(v->wrong)) != EXH_VERIFY_MISMATCH) {
            print_error("vector %zu (%s): identify %d, verify %d, wrong %d\n", i, v->hash,
                        exh_hash_identify(v->hash), exh_hash_verify(v->hash, v->pw, v->pwlen),
                        exh_hash_verify(v->hash, v->wrong, strlen(v->wrong)));
            fail();
        }
    }
}

/* A NUL inside the password is part of it, never a terminator. */
static void test_embedded_nul_password(void **state)
{
    (void)state;
    assert_int_equal(exh_hash_verify(M7_ALICE, S("correct horse\0x")), EXH_VERIFY_MISMATCH);
    assert_int_equal(exh_hash_verify(M7_ALICE, S("correct\0horse")), EXH_VERIFY_MISMATCH);
    assert_int_equal(exh_hash_verify(M6_ALICE, S("correct horse\0")), EXH_VERIFY_MISMATCH);
    assert_int_equal(exh_hash_verify(M6_ALICE, S("correct horse\0x")), EXH_VERIFY_MISMATCH);
    /* ...except that PBKDF2 cannot see trailing NULs: HMAC pads a short key
     * with zeros, so "pw" and "pw\0" are the same key (RFC 2104 §2).  Every
     * PBKDF2 implementation agrees; we do not paper over it. */
    assert_int_equal(exh_hash_verify(M7_ALICE, S("correct horse\0")), EXH_VERIFY_OK);
    /* crypt() would stop at the NUL and accept "U*U" */
    assert_int_equal(exh_hash_verify("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
                                     S("U*U\0z")),
                     EXH_VERIFY_MISMATCH);

    char out[EXH_HASH_MAX];
    assert_int_equal(exh_hash_password(S("a\0b"), &small, out, sizeof(out), NULL), EXH_OK);
    assert_int_equal(exh_hash_verify(out, S("a\0b")), EXH_VERIFY_OK);
    assert_int_equal(exh_hash_verify(out, S("a\0c")), EXH_VERIFY_MISMATCH);
    assert_int_equal(exh_hash_verify(out, S("a")), EXH_VERIFY_MISMATCH);
}

static void test_null_password(void **state)
{
    (void)state;
    assert_int_equal(exh_hash_verify(M7_CAROL, NULL, 0), EXH_VERIFY_OK);
    assert_int_equal(exh_hash_verify(M7_CAROL, NULL, 3), EXH_VERIFY_ERROR);
    assert_int_equal(exh_hash_verify(NULL, "x", 1), EXH_VERIFY_BAD_HASH);
    assert_int_equal(exh_hash_identify(NULL), EXH_HASH_UNKNOWN);
}

/* ---- bcrypt against libxcrypt itself ------------------------------------- */

static void test_bcrypt_round_trip(void **state)
{
    (void)state;
    static const char *prefixes[] = {"$2b$", "$2a$", "$2y$"};
    char pw[1000];
    for (size_t i = 0; i < sizeof(pw); i++)
        pw[i] = (char)('!' + i % 90);
    for (size_t i = 0; i < 3; i++) {
        char setting[CRYPT_GENSALT_OUTPUT_SIZE];
        struct crypt_data *cd = calloc(1, sizeof(*cd));
        assert_non_null(cd);
        assert_non_null(crypt_gensalt_rn(prefixes[i], 4, NULL, 0, setting, sizeof(setting)));
        char *h = crypt_rn("hunter2", setting, cd, sizeof(*cd));
        assert_non_null(h);
        assert_int_equal(exh_hash_identify(h), EXH_HASH_BCRYPT);
        assert_int_equal(exh_hash_verify(h, S("hunter2")), EXH_VERIFY_OK);
        assert_int_equal(exh_hash_verify(h, S("hunter3")), EXH_VERIFY_MISMATCH);
        assert_int_equal(exh_hash_verify(h, S("hunter")), EXH_VERIFY_MISMATCH);

        /* bcrypt reads 72 bytes: a 1000-byte password (which libxcrypt itself
         * refuses) verifies against the hash of its first 72 */
        char first72[73];
        memcpy(first72, pw, 72);
        first72[72] = '\0';
        h = crypt_rn(first72, setting, cd, sizeof(*cd));
        assert_non_null(h);
        assert_int_equal(exh_hash_verify(h, pw, sizeof(pw)), EXH_VERIFY_OK);
        assert_int_equal(exh_hash_verify(h, pw, 71), EXH_VERIFY_MISMATCH);
        free(cd);
    }
}

/* ---- hostile stored strings ----------------------------------------------- */

#define A2_SALT "c29tZXNhbHQ"
#define A2_TAG  "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
#define P_TAG   "Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs"
#define BC_TAIL "CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
#define M_SALT  "srrY0XUD0h1b/jJu"
#define M_HASH                                                                                     \
    "6eCO88rsflxy9QZfnfMeW1GXp1vOM+6AFyww1xldGZVtIS7hQLK+wv5eK5J8QAoL8b0cFGTF1YKRMnVgWn6qaw=="
#define M_HASH_NOPAD                                                                               \
    "6eCO88rsflxy9QZfnfMeW1GXp1vOM+6AFyww1xldGZVtIS7hQLK+wv5eK5J8QAoL8b0cFGTF1YKRMnVgWn6qaw"
#define M_HASH_63                                                                                  \
    "6eCO88rsflxy9QZfnfMeW1GXp1vOM+6AFyww1xldGZVtIS7hQLK+wv5eK5J8QAoL8b0cFGTF1YKRMnVgWn6q"
#define M_HASH_65                                                                                  \
    "6eCO88rsflxy9QZfnfMeW1GXp1vOM+6AFyww1xldGZVtIS7hQLK+wv5eK5J8QAoL8b0cFGTF1YKRMnVgWn6qawA="
#define E_HEX "44edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942fc5abb5"

static const char *const malformed[] = {
    "",
    "$",
    "$$",
    "$$$$$$$$$$",
    "password",
    "hunter2",
    "*0",
    "!",
    /* argon2id */
    "$argon2id$",
    "$argon2id$m=256,t=2,p=1$" A2_SALT "$" A2_TAG,       /* no version: libargon2 takes v=16 */
    "$argon2id$v=16$m=256,t=2,p=1$" A2_SALT "$" A2_TAG,  /* argon2 1.0 */
    "$argon2id$v=019$m=256,t=2,p=1$" A2_SALT "$" A2_TAG, /* not canonical */
    "$argon2i$v=19$m=256,t=2,p=1$" A2_SALT "$" A2_TAG,
    "$argon2d$v=19$m=256,t=2,p=1$" A2_SALT "$" A2_TAG,
    "$ARGON2ID$v=19$m=256,t=2,p=1$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=0,t=2,p=1$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=7,t=1,p=1$" A2_SALT "$" A2_TAG, /* below 8 KiB per lane */
    "$argon2id$v=19$m=15,t=1,p=2$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=256,t=0,p=1$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=256,t=2,p=0$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=4096,t=2,p=65$" A2_SALT "$" A2_TAG,        /* lanes over the cap */
    "$argon2id$v=19$m=4194304,t=1,p=1$" A2_SALT "$" A2_TAG,      /* 4 GiB */
    "$argon2id$v=19$m=1048576,t=9,p=1$" A2_SALT "$" A2_TAG,      /* 9 GiB of passes */
    "$argon2id$v=19$m=256,t=4294967295,p=1$" A2_SALT "$" A2_TAG, /* hours */
    "$argon2id$v=19$m=256,t=4294967296,p=1$" A2_SALT "$" A2_TAG, /* does not fit */
    "$argon2id$v=19$m=0256,t=2,p=1$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=+256,t=2,p=1$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$t=2,m=256,p=1$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=256,t=2,p=1,$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=256,t=2,p=1,x=1$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=256,t=2$" A2_SALT "$" A2_TAG,
    "$argon2id$v=19$m=256,t=2,p=1$$" A2_TAG,                 /* empty salt */
    "$argon2id$v=19$m=256,t=2,p=1$c29tZXNh$" A2_TAG,         /* 6-byte salt */
    "$argon2id$v=19$m=256,t=2,p=1$" A2_SALT "=$" A2_TAG,     /* padding */
    "$argon2id$v=19$m=256,t=2,p=1$" A2_SALT "$nf65",         /* 3-byte tag */
    "$argon2id$v=19$m=256,t=2,p=1$" A2_SALT "$" A2_TAG "$",  /* extra field */
    "$argon2id$v=19$m=256,t=2,p=1$" A2_SALT "$" A2_TAG "\n", /* trailing garbage */
    "$argon2id$v=19$m=256,t=2,p=1$" A2_SALT "$" A2_TAG "=",
    "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHR$" A2_TAG, /* non-zero unused bits */
    /* PBKDF2 */
    "$pbkdf2-sha256$i=0$c2FsdA$" P_TAG,
    "$pbkdf2-sha256$i=10000001$c2FsdA$" P_TAG, /* over the 10M cap */
    "$pbkdf2-sha256$i=-1$c2FsdA$" P_TAG,
    "$pbkdf2-sha256$i=01$c2FsdA$" P_TAG,
    "$pbkdf2-sha256$i=$c2FsdA$" P_TAG,
    "$pbkdf2-sha256$1$c2FsdA$" P_TAG, /* passlib's layout, not ours */
    "$pbkdf2-sha256$i=1,l=31$c2FsdA$" P_TAG,
    "$pbkdf2-sha256$i=1,$c2FsdA$" P_TAG,
    "$pbkdf2-sha256$i=1,r=8$c2FsdA$" P_TAG,
    "$pbkdf2-sha256$i=1$$" P_TAG,
    "$pbkdf2-sha256$i=1$c2FsdA",
    "$pbkdf2-sha256$i=1$c2Fsd*$" P_TAG,
    "$pbkdf2-sha256$i=1$c2FsdA=$" P_TAG, /* wrong amount of padding */
    "$pbkdf2-sha256$i=1$c2FsdA===$" P_TAG,
    "$pbkdf2-sha256$i=1$c2F=dA$" P_TAG, /* padding inside */
    "$pbkdf2-sha256$i=1$c2Fsd$" P_TAG,  /* a lone final character */
    "$pbkdf2-sha256$i=1$c2FsdB$" P_TAG, /* non-zero unused bits */
    "$pbkdf2-sha256$i=1$c2FsdAB$" P_TAG,
    "$pbkdf2-sha256$i=1$ c2FsdA$" P_TAG,
    "$pbkdf2-sha256$i=1$c2Fs\ndA$" P_TAG,
    "$pbkdf2-sha256$i=1$c2FsdA$Eg+2z/z4syxD5yJSVsT4", /* 15-byte tag */
    "$pbkdf2-sha256$i=1$c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAA", /* 66-byte tag */
    "$pbkdf2-sha256$i=1$c2FsdA$" P_TAG " ",
    "$pbkdf2-sha1$i=1$c2FsdA$" P_TAG,
    "$pbkdf2$i=1$c2FsdA$" P_TAG,
    "$PBKDF2-SHA256$i=1$c2FsdA$" P_TAG,
    /* bcrypt */
    "$2b$03$" BC_TAIL, /* below libxcrypt's minimum */
    "$2b$32$" BC_TAIL,
    "$2b$31$" BC_TAIL, /* libxcrypt takes it; 2^31 rounds is days */
    "$2b$19$" BC_TAIL, /* over our cap */
    "$2b$5$" BC_TAIL,
    "$2b$005$" BC_TAIL,
    "$2b$0a$" BC_TAIL,
    "$2x$05$" BC_TAIL, /* crypt_blowfish's buggy-compat mode */
    "$2$05$" BC_TAIL,
    "$2c$05$" BC_TAIL,
    "$2b$05$" BC_TAIL "e",
    "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe",
    "$2b$05$CCCCCCCCCCCCCCCCCCCCC/E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", /* salt not canonical */
    "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeX", /* tag not canonical */
    "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeV",
    "$2b$05$CCCCCCCCCCCCCCCCCCCCO.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW" /* 'O' ok, then '.' */ "x",
    "$2b$05$CCCCCCCCCCCCCCCCCCCCCe5YPO9kmyuRGyh0XouQYb4YMJKvyOeWx",
    "$2b$05$CCCCCCCCCCCCCCCCCCCC!.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
    "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvy+eW",
    "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0$ouQYb4YMJKvyOeW",
    "$2b$05$",
    /* Mosquitto */
    "$7$0$" M_SALT "$" M_HASH,
    "$7$10000001$" M_SALT "$" M_HASH,
    "$7$abc$" M_SALT "$" M_HASH,
    "$7$$" M_SALT "$" M_HASH,
    "$7$101$$" M_HASH,
    "$7$101$" M_SALT "$",
    "$7$101$" M_SALT "$" M_HASH_NOPAD, /* mosquitto always pads */
    "$7$101$" M_SALT "$" M_HASH_63,    /* 63-byte tag */
    "$7$101$" M_SALT "$" M_HASH_65,    /* 65-byte tag */
    "$7$101$" M_SALT "$" M_HASH "$",
    "$7$101$" M_SALT "$" M_HASH "\n", /* a password-file line ending */
    "$7$101$" M_SALT "*$" M_HASH,
    "$7$" M_SALT "$" M_HASH,
    "$6$" M_SALT "$" M_HASH_NOPAD,
    "$6$" M_SALT "$" M_HASH_63,
    "$6$$" M_HASH,
    "$6$101$" M_SALT "$" M_HASH,
    /* glibc sha512crypt shares the "$6$" prefix, not the encoding */
    "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/"
    "TFug6pIPSqbJoCT6dfnj.",
    "$6$abc+/abcABC12345$1Ld1avqqEMrEpXZbsWvFjhVA1YTzhrLrCT/"
    "TwLh4JtF3vdIo.j93hpQeW5t6MuGiqaE1YEJZVZqcjfEhpsJE1/",
    "$6$rounds=5000$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/"
    "TFug6pIP",
    "$5$saltsalt$abc",
    "$1$saltsalt$abc",
    "alice:" M6_ALICE, /* a whole password-file line */
    /* EMQX */
    "$emqx-sha256$middle$c2xhdF9mb28xMjM$" E_HEX,
    "$emqx-sha256$PREFIX$c2xhdF9mb28xMjM$" E_HEX,
    "$emqx-sha256$disable$$" E_HEX,
    "$emqx-sha256$suffix$c2xhdF9mb28xMjM$" E_HEX "0",
    "$emqx-sha256$suffix$c2xhdF9mb28xMjM$"
    "44edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942fc5abb",
    "$emqx-sha256$suffix$c2xhdF9mb28xMjM$"
    "44edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942fc5abbg",
    "$emqx-sha256$suffix$c2xhdF9mb28xMjM$"
    "0x44edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942fc5ab",
    "$emqx-sha512$suffix$c2xhdF9mb28xMjM$" E_HEX,
    "$emqx-sha256$suffix$c2xhdF9mb28xMjM$" E_HEX "$",
    "$emqx-sha256$suffix$" E_HEX,
    "$emqx-md5$suffix$c2xhdF9mb28xMjM$44edc2d57cde8d79c98145003e105b90",
    "$emqx-sha256$suffix$c2xhdF9m!b28xMjM$" E_HEX,
};

static void test_malformed(void **state)
{
    (void)state;
    assert_true(sizeof(malformed) / sizeof(malformed[0]) >= 25);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        const char *h = malformed[i];
        if (exh_hash_identify(h) != EXH_HASH_UNKNOWN ||
            exh_hash_verify(h, S("password")) != EXH_VERIFY_BAD_HASH ||
            exh_hash_verify(h, S("")) != EXH_VERIFY_BAD_HASH || !exh_hash_needs_upgrade(h, NULL)) {
            print_error("malformed %zu not rejected: \"%s\" (identify %d)\n", i, h,
                        exh_hash_identify(h));
            fail();
        }
    }
}

/* The caps are inclusive: the largest accepted costs still identify (we
 * do not compute them: seconds each). */
static void test_cost_caps_inclusive(void **state)
{
    (void)state;
    assert_int_equal(exh_hash_identify("$pbkdf2-sha256$i=10000000$c2FsdA$" P_TAG),
                     EXH_HASH_PBKDF2_SHA256);
    assert_int_equal(exh_hash_identify("$7$10000000$" M_SALT "$" M_HASH), EXH_HASH_MOSQ_PBKDF2);
    assert_int_equal(exh_hash_identify("$2b$18$" BC_TAIL), EXH_HASH_BCRYPT);
    assert_int_equal(exh_hash_identify("$2b$04$" BC_TAIL), EXH_HASH_BCRYPT);
    assert_int_equal(exh_hash_identify("$argon2id$v=19$m=2097152,t=4,p=1$" A2_SALT "$" A2_TAG),
                     EXH_HASH_ARGON2ID);
    assert_int_equal(exh_hash_identify("$argon2id$v=19$m=512,t=1,p=64$" A2_SALT "$" A2_TAG),
                     EXH_HASH_ARGON2ID);
    assert_int_equal(exh_hash_identify("$argon2id$v=19$m=8,t=1048576,p=1$" A2_SALT "$" A2_TAG),
                     EXH_HASH_ARGON2ID);
    assert_int_equal(exh_hash_identify("$argon2id$v=19$m=8,t=1048577,p=1$" A2_SALT "$" A2_TAG),
                     EXH_HASH_UNKNOWN);
}

/* Strings near and far past EXH_HASH_MAX: rejected without reading past
 * EXH_HASH_MAX bytes (ASan would see an overread of the exact-size copy). */
static void test_giant_strings(void **state)
{
    (void)state;
    size_t big = (size_t)1 << 20;
    char *s = malloc(big + 1);
    assert_non_null(s);
    memcpy(s, "$7$101$", 7);
    memset(s + 7, 'A', big - 7);
    s[big] = '\0';
    assert_int_equal(exh_hash_identify(s), EXH_HASH_UNKNOWN);
    assert_int_equal(exh_hash_verify(s, S("x")), EXH_VERIFY_BAD_HASH);
    assert_true(exh_hash_needs_upgrade(s, NULL));

    /* a PBKDF2 string with a salt long enough to reach EXH_HASH_MAX */
    char pre[] = "$pbkdf2-sha256$i=1$";
    char post[] = "$" P_TAG;
    size_t saltchars = EXH_HASH_MAX - 1 - strlen(pre) - strlen(post);
    saltchars -= saltchars % 4;
    char *ok = malloc(EXH_HASH_MAX + 8);
    assert_non_null(ok);
    for (size_t extra = 0; extra <= 8; extra += 4) {
        size_t n = 0;
        memcpy(ok + n, pre, strlen(pre));
        n += strlen(pre);
        memset(ok + n, 'A', saltchars + extra);
        n += saltchars + extra;
        memcpy(ok + n, post, strlen(post) + 1);
        n += strlen(post);
        /* Copy to a heap block of exactly the string's size. */
        char *exact = malloc(n + 1);
        assert_non_null(exact);
        memcpy(exact, ok, n + 1);
        exh_hash_alg want = n < EXH_HASH_MAX ? EXH_HASH_PBKDF2_SHA256 : EXH_HASH_UNKNOWN;
        assert_int_equal(exh_hash_identify(exact), want);
        assert_int_equal(exh_hash_verify(exact, S("password")),
                         want ? EXH_VERIFY_MISMATCH : EXH_VERIFY_BAD_HASH);
        free(exact);
    }
    free(ok);

    /* Not terminated within EXH_HASH_MAX: the parser must stop there. */
    char *unterminated = malloc(EXH_HASH_MAX);
    assert_non_null(unterminated);
    memset(unterminated, '$', EXH_HASH_MAX);
    assert_int_equal(exh_hash_identify(unterminated), EXH_HASH_UNKNOWN);
    assert_int_equal(exh_hash_verify(unterminated, S("x")), EXH_VERIFY_BAD_HASH);
    free(unterminated);
    free(s);
}

/*
 * Every prefix of every vector, and every vector with one byte changed:
 * identify and verify must agree on what is well-formed (identify says
 * UNKNOWN exactly when verify says BAD_HASH), and no change to the tag or
 * parameters may keep the password valid.  A prefix can stay well-formed
 * (dropped padding, a shorter PBKDF2 tag -- PBKDF2's output is
 * prefix-stable, hence the 16-byte minimum), so prefixes are only checked
 * for agreement.
 */
static void test_mutations(void **state)
{
    (void)state;
    char buf[EXH_HASH_MAX];
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector *v = &vectors[i];
        size_t len = strlen(v->hash);
        if (strstr(v->hash, "m=65536")) continue; /* 64 MiB a try: too slow here */
        for (size_t n = 0; n < len; n++) {
            memcpy(buf, v->hash, n);
            buf[n] = '\0';
            bool known = exh_hash_identify(buf) != EXH_HASH_UNKNOWN;
            exh_verify r = exh_hash_verify(buf, v->pw, v->pwlen);
            if (known != (r != EXH_VERIFY_BAD_HASH)) {
                print_error("prefix %zu of vector %zu: identify and verify disagree\n", n, i);
                fail();
            }
        }
        /* Flip the low bit of each byte of the parameters, of every 5th byte
         * of salt and tag, and of the last three bytes.  Skipped for speed:
         * bcrypt's cost digits ("05" would become "15"). */
        for (size_t k = 1; k < len; k++) {
            if (k >= 32 && k % 5 != 0 && k + 3 < len) continue;
            if (v->alg == EXH_HASH_BCRYPT && (k == 4 || k == 5)) continue;
            memcpy(buf, v->hash, len + 1);
            buf[k] ^= 0x01;
            bool known = exh_hash_identify(buf) != EXH_HASH_UNKNOWN;
            exh_verify r = exh_hash_verify(buf, v->pw, v->pwlen);
            bool case_only = buf[k] != v->hash[k] && ((buf[k] | 0x20) == (v->hash[k] | 0x20)) &&
                             strstr(v->hash, "emqx");
            if (known != (r != EXH_VERIFY_BAD_HASH) || (r == EXH_VERIFY_OK && !case_only)) {
                print_error("vector %zu with byte %zu flipped: \"%s\" gives %d\n", i, k, buf, r);
                fail();
            }
        }
    }
}

/* ---- upgrade decisions ----------------------------------------------------- */

typedef struct {
    const char *hash;
    exh_hash_params params;
    bool upgrade;
} upgrade_case;

#define A2(m, t, p) "$argon2id$v=19$m=" #m ",t=" #t ",p=" #p "$" A2_SALT "$" A2_TAG

static const upgrade_case upgrade_cases[] = {
    {A2(19456, 2, 1), {19456, 2, 1}, false},
    {A2(19456, 2, 4), {19456, 2, 1}, false}, /* lanes do not count */
    {A2(19456, 2, 1), {19456, 2, 4}, false},
    {A2(65536, 3, 1), {19456, 2, 1}, false}, /* stronger than asked */
    {A2(19456, 1, 1), {19456, 2, 1}, true},  /* fewer passes */
    {A2(19455, 2, 1), {19456, 2, 1}, true},  /* less memory */
    {A2(65536, 1, 1), {19456, 2, 1}, true},
    {A2(64, 1, 1), {64, 1, 1}, false},
    {A2(64, 1, 1), {19456, 2, 1}, true},
    {"$pbkdf2-sha512$i=4096$c2FsdA$0Zexsz2wFD4BixLz0dFHnmzevcyXxcD4f2kC4HL0V7UUPzBgJkGz1VzTNZiMs2uE"
     "N2Bg7NUy4Dm3QqI5Q0ry1Q",
     {64, 1, 1},
     true},
    {"$2b$05$" BC_TAIL, {64, 1, 1}, true},
    {M7_ALICE, {64, 1, 1}, true},
    {M6_ALICE, {64, 1, 1}, true},
    {"$emqx-sha256$suffix$c2xhdF9mb28xMjM$" E_HEX, {64, 1, 1}, true},
    {"not a hash", {64, 1, 1}, true},
    {"$argon2id$v=16$m=65536,t=3,p=1$" A2_SALT "$" A2_TAG, {64, 1, 1}, true},
};

static void test_needs_upgrade(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(upgrade_cases) / sizeof(upgrade_cases[0]); i++) {
        const upgrade_case *c = &upgrade_cases[i];
        if (exh_hash_needs_upgrade(c->hash, &c->params) != c->upgrade) {
            print_error("upgrade case %zu: %s\n", i, c->hash);
            fail();
        }
    }
    /* NULL params: the defaults */
    assert_false(exh_hash_needs_upgrade(A2(19456, 2, 1), NULL));
    assert_true(exh_hash_needs_upgrade(A2(19456, 1, 1), NULL));
    assert_true(exh_hash_needs_upgrade(NULL, NULL));
}

/* ---- new hashes -------------------------------------------------------------- */

static void test_hash_password_round_trip(void **state)
{
    (void)state;
    char a[EXH_HASH_MAX], b[EXH_HASH_MAX];
    exh_error err;
    assert_int_equal(exh_hash_password(S("s3cret"), &small, a, sizeof(a), &err), EXH_OK);
    assert_int_equal(exh_hash_password(S("s3cret"), &small, b, sizeof(b), &err), EXH_OK);
    assert_non_null(strstr(a, "$argon2id$v=19$m=64,t=1,p=1$"));
    assert_string_not_equal(a, b); /* fresh salt each time */
    assert_int_equal(exh_hash_identify(a), EXH_HASH_ARGON2ID);
    assert_int_equal(exh_hash_verify(a, S("s3cret")), EXH_VERIFY_OK);
    assert_int_equal(exh_hash_verify(b, S("s3cret")), EXH_VERIFY_OK);
    assert_int_equal(exh_hash_verify(a, S("s3creT")), EXH_VERIFY_MISMATCH);
    assert_int_equal(exh_hash_verify(a, S("")), EXH_VERIFY_MISMATCH);
    assert_false(exh_hash_needs_upgrade(a, &small));
    assert_true(exh_hash_needs_upgrade(a, NULL));

    /* 16-byte salt, 32-byte tag: 22 and 43 base64 characters */
    const char *salt = strrchr(a, '$');
    assert_non_null(salt);
    assert_int_equal(strlen(salt + 1), 43);
    const char *p = a + strlen("$argon2id$v=19$m=64,t=1,p=1$");
    assert_int_equal(salt - p, 22);

    /* empty and binary passwords */
    assert_int_equal(exh_hash_password(NULL, 0, &small, a, sizeof(a), &err), EXH_OK);
    assert_int_equal(exh_hash_verify(a, S("")), EXH_VERIFY_OK);
    assert_int_equal(exh_hash_verify(a, S("\0")), EXH_VERIFY_MISMATCH);
    unsigned char bin[256];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(255 - i);
    assert_int_equal(exh_hash_password((const char *)bin, sizeof(bin), &small, a, sizeof(a), &err),
                     EXH_OK);
    assert_int_equal(exh_hash_verify(a, (const char *)bin, sizeof(bin)), EXH_VERIFY_OK);
    assert_int_equal(exh_hash_verify(a, (const char *)bin, sizeof(bin) - 1), EXH_VERIFY_MISMATCH);

    /* two lanes */
    exh_hash_params two = {64, 2, 2};
    assert_int_equal(exh_hash_password(S("x"), &two, a, sizeof(a), &err), EXH_OK);
    assert_non_null(strstr(a, "m=64,t=2,p=2$"));
    assert_int_equal(exh_hash_verify(a, S("x")), EXH_VERIFY_OK);
}

static void test_hash_password_defaults(void **state)
{
    (void)state;
    exh_hash_params p = {0, 0, 0};
    exh_hash_params_default(&p);
    assert_int_equal(p.m_kib, 19456);
    assert_int_equal(p.t_cost, 2);
    assert_int_equal(p.lanes, 1);
    exh_hash_params_default(NULL);

    char h[EXH_HASH_MAX];
    assert_int_equal(exh_hash_password(S("correct horse"), NULL, h, sizeof(h), NULL), EXH_OK);
    assert_non_null(strstr(h, "$argon2id$v=19$m=19456,t=2,p=1$"));
    assert_int_equal(exh_hash_verify(h, S("correct horse")), EXH_VERIFY_OK);
    assert_int_equal(exh_hash_verify(h, S("correct horsE")), EXH_VERIFY_MISMATCH);
    assert_false(exh_hash_needs_upgrade(h, NULL));
    assert_false(exh_hash_needs_upgrade(h, &p));
}

typedef struct {
    exh_hash_params params;
    const char *message; /* a fragment of the error */
} bad_params;

static const bad_params bad_params_cases[] = {
    {{0, 1, 1}, "at least 8 KiB per lane"},
    {{7, 1, 1}, "at least 8 KiB per lane"},
    {{15, 1, 2}, "16 KiB for 2 lanes"},
    {{64, 0, 1}, "passes"},
    {{64, 1, 0}, "lanes"},
    {{4096, 1, 65}, "lanes"},
    {{4096, 1, 0xFFFFFFu + 1}, "lanes"},
    {{UINT32_MAX, 1, 1}, "at most"},
    {{(2u << 20) + 1, 1, 1}, "at most 2097152 KiB"},
    {{1u << 20, 9, 1}, "memory x passes"},
    {{8, UINT32_MAX, 1}, "memory x passes"},
};

static void test_params_out_of_range(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_params_cases) / sizeof(bad_params_cases[0]); i++) {
        const bad_params *c = &bad_params_cases[i];
        char out[EXH_HASH_MAX] = "junk";
        exh_error err;
        exh_status st = exh_hash_password(S("pw"), &c->params, out, sizeof(out), &err);
        if (st != EXH_EINVAL || err.status != EXH_EINVAL || !strstr(err.message, c->message) ||
            out[0] != '\0') {
            print_error("params case %zu: status %d, message \"%s\"\n", i, st, err.message);
            fail();
        }
        /* no error struct: still refused */
        assert_int_equal(exh_hash_password(S("pw"), &c->params, out, sizeof(out), NULL),
                         EXH_EINVAL);
    }
}

static void test_hash_password_buffers(void **state)
{
    (void)state;
    char out[EXH_HASH_MAX];
    exh_error err;
    /* "$argon2id$v=19$m=64,t=1,p=1$" + 22 + "$" + 43 + NUL */
    size_t need = strlen("$argon2id$v=19$m=64,t=1,p=1$") + 22 + 1 + 43 + 1;
    assert_int_equal(exh_hash_password(S("pw"), &small, out, need - 1, &err), EXH_EINVAL);
    assert_non_null(strstr(err.message, "output buffer"));
    assert_int_equal(out[0], '\0');
    assert_int_equal(exh_hash_password(S("pw"), &small, out, need, &err), EXH_OK);
    assert_int_equal(strlen(out), need - 1);
    assert_int_equal(exh_hash_password(S("pw"), &small, NULL, 100, &err), EXH_EINVAL);
    assert_int_equal(exh_hash_password(S("pw"), &small, out, 0, &err), EXH_EINVAL);
    assert_int_equal(exh_hash_password(NULL, 2, &small, out, sizeof(out), &err), EXH_EINVAL);
    assert_int_equal(out[0], '\0');
}

/* ---- EMQX import ----------------------------------------------------------- */

static void digest_hex(const EVP_MD *md, const void *a, size_t alen, const void *b, size_t blen,
                       char *hex)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestInit_ex(ctx, md, NULL), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, a, alen), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, b, blen), 1);
    assert_int_equal(EVP_DigestFinal_ex(ctx, d, &n), 1);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02X", d[i]); /* upper case: exh_hash_emqx lowers it */
}

static void test_emqx_build(void **state)
{
    (void)state;
    char out[EXH_HASH_MAX];
    exh_error err;
    assert_int_equal(exh_hash_emqx(EXH_HASH_EMQX_SHA256, false,
                                   (const unsigned char *)"slat_foo123", 11, E_HEX, out,
                                   sizeof(out), &err),
                     EXH_OK);
    assert_string_equal(out, "$emqx-sha256$suffix$c2xhdF9mb28xMjM$" E_HEX);
    assert_int_equal(exh_hash_verify(out, S("public")), EXH_VERIFY_OK);

    /* binary salts (with '$' and NUL), both positions, both digests */
    static const unsigned char salts[][7] = {
        {'$', 0, 0xff, '$', 'a', 0x80, 1}, {'s', 'a', 'l', 't', 0, 0, 0}, {0xfb, 0xff, 0xbf}};
    static const size_t saltlens[] = {7, 4, 3};
    for (size_t s = 0; s < 3; s++) {
        for (int sha512 = 0; sha512 <= 1; sha512++) {
            for (int prefix = 0; prefix <= 1; prefix++) {
                const EVP_MD *md = sha512 ? EVP_sha512() : EVP_sha256();
                exh_hash_alg alg = sha512 ? EXH_HASH_EMQX_SHA512 : EXH_HASH_EMQX_SHA256;
                char hex[2 * EVP_MAX_MD_SIZE + 1];
                size_t sl = saltlens[s];
                if (prefix)
                    digest_hex(md, salts[s], sl, "pw\0x", 4, hex);
                else
                    digest_hex(md, "pw\0x", 4, salts[s], sl, hex);
                assert_int_equal(
                    exh_hash_emqx(alg, prefix, salts[s], sl, hex, out, sizeof(out), &err), EXH_OK);
                assert_int_equal(exh_hash_identify(out), alg);
                assert_null(strpbrk(out + strlen(out) - 2 * EVP_MD_get_size(md), "ABCDEF"));
                assert_int_equal(exh_hash_verify(out, S("pw\0x")), EXH_VERIFY_OK);
                assert_int_equal(exh_hash_verify(out, S("pw")), EXH_VERIFY_MISMATCH);
                assert_true(exh_hash_needs_upgrade(out, NULL));
            }
        }
    }
}

static void test_emqx_errors(void **state)
{
    (void)state;
    char out[EXH_HASH_MAX];
    exh_error err;
    const unsigned char *salt = (const unsigned char *)"salt";
    unsigned char bigsalt[400] = {0};
    static const char hex128[] =
        E_HEX "44edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942fc5abb5";

    struct {
        exh_hash_alg alg;
        const unsigned char *salt;
        size_t saltlen;
        const char *hex;
        size_t outsize;
        const char *message;
    } cases[] = {
        {EXH_HASH_ARGON2ID, salt, 4, E_HEX, sizeof(out), "sha256 or sha512"},
        {EXH_HASH_UNKNOWN, salt, 4, E_HEX, sizeof(out), "sha256 or sha512"},
        {EXH_HASH_EMQX_SHA256, NULL, 4, E_HEX, sizeof(out), "no salt"},
        {EXH_HASH_EMQX_SHA256, salt, 4, NULL, sizeof(out), "no hash"},
        {EXH_HASH_EMQX_SHA256, salt, 4, "", sizeof(out), "64 hex digits"},
        {EXH_HASH_EMQX_SHA256, salt, 4, E_HEX "0", sizeof(out), "more than 64"},
        {EXH_HASH_EMQX_SHA256, salt, 4, hex128, sizeof(out), "more than 64"},
        {EXH_HASH_EMQX_SHA512, salt, 4, E_HEX, sizeof(out), "128 hex digits"},
        {EXH_HASH_EMQX_SHA256, salt, 4,
         "44edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942fc5abbz", sizeof(out),
         "character 64"},
        {EXH_HASH_EMQX_SHA256, salt, 4,
         " 4edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942fc5abb5", sizeof(out),
         "character 1"},
        {EXH_HASH_EMQX_SHA256, bigsalt, sizeof(bigsalt), E_HEX, sizeof(out), "does not fit"},
        {EXH_HASH_EMQX_SHA256, salt, SIZE_MAX, E_HEX, sizeof(out), "does not fit"},
        {EXH_HASH_EMQX_SHA256, salt, 4, E_HEX, 90, "output buffer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strcpy(out, "junk");
        exh_status st = exh_hash_emqx(cases[i].alg, true, cases[i].salt, cases[i].saltlen,
                                      cases[i].hex, out, cases[i].outsize, &err);
        if (st != EXH_EINVAL || !strstr(err.message, cases[i].message) || out[0] != '\0') {
            print_error("emqx case %zu: status %d, message \"%s\"\n", i, st, err.message);
            fail();
        }
    }
    /* the exact size fits, one less does not: 13 + 7 + 6 + 1 + 64 + 1 */
    assert_int_equal(exh_hash_emqx(EXH_HASH_EMQX_SHA256, true, salt, 4, E_HEX, out, 91, &err),
                     EXH_EINVAL);
    assert_int_equal(exh_hash_emqx(EXH_HASH_EMQX_SHA256, true, salt, 4, E_HEX, out, 92, &err),
                     EXH_OK);
    assert_int_equal(strlen(out), 91);
    /* the largest salt that fits still round-trips through identify */
    size_t maxsalt = (EXH_HASH_MAX - 1 - 13 - 7 - 1 - 128) / 4 * 3;
    assert_int_equal(exh_hash_emqx(EXH_HASH_EMQX_SHA512, false, bigsalt, maxsalt, hex128, out,
                                   sizeof(out), &err),
                     EXH_OK);
    assert_int_equal(exh_hash_identify(out), EXH_HASH_EMQX_SHA512);
}

/* ---- names ------------------------------------------------------------------ */

static void test_alg_names(void **state)
{
    (void)state;
    assert_string_equal(exh_hash_alg_name(EXH_HASH_UNKNOWN), "unknown");
    assert_string_equal(exh_hash_alg_name(EXH_HASH_ARGON2ID), "argon2id");
    assert_string_equal(exh_hash_alg_name(EXH_HASH_PBKDF2_SHA512), "pbkdf2-sha512");
    assert_string_equal(exh_hash_alg_name(EXH_HASH_PBKDF2_SHA256), "pbkdf2-sha256");
    assert_string_equal(exh_hash_alg_name(EXH_HASH_BCRYPT), "bcrypt");
    assert_string_equal(exh_hash_alg_name(EXH_HASH_MOSQ_PBKDF2), "mosquitto-sha512-pbkdf2");
    assert_string_equal(exh_hash_alg_name(EXH_HASH_MOSQ_SHA512), "mosquitto-sha512");
    assert_string_equal(exh_hash_alg_name(EXH_HASH_EMQX_SHA256), "emqx-sha256");
    assert_string_equal(exh_hash_alg_name(EXH_HASH_EMQX_SHA512), "emqx-sha512");
    assert_string_equal(exh_hash_alg_name((exh_hash_alg)99), "unknown");
}

/* ---- mosquitto_passwd, live ------------------------------------------------ */

/* Run argv quietly; true if it exited 0.  No shell, so the password needs no quoting. */
static bool run_quiet(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_mosquitto_passwd_live(void **state)
{
    (void)state;
    char *probe[] = {"sh", "-c", "command -v mosquitto_passwd", NULL};
    if (!run_quiet(probe)) skip();

    char dir[] = "/tmp/exh_hash_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char file[64];
    snprintf(file, sizeof(file), "%s/passwd", dir);
    static const char pw[] = "It's a \"pa$$word\" \xe2\x82\xac";
    static const char *const types[] = {NULL, "sha512", "sha512-pbkdf2"};
    static const exh_hash_alg algs[] = {EXH_HASH_MOSQ_PBKDF2, EXH_HASH_MOSQ_SHA512,
                                        EXH_HASH_MOSQ_PBKDF2};
    for (size_t t = 0; t < 3; t++) {
        char *argv[10];
        int n = 0;
        argv[n++] = "mosquitto_passwd";
        if (types[t]) {
            argv[n++] = "-H";
            argv[n++] = (char *)types[t];
        }
        argv[n++] = "-b";
        argv[n++] = "-c";
        argv[n++] = file;
        argv[n++] = "someone";
        argv[n++] = (char *)pw;
        argv[n] = NULL;
        assert_true(run_quiet(argv));

        FILE *f = fopen(file, "r");
        assert_non_null(f);
        char line[EXH_HASH_MAX + 32];
        assert_non_null(fgets(line, sizeof(line), f));
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        const char *hash = strchr(line, ':');
        assert_non_null(hash);
        hash++;
        assert_int_equal(exh_hash_identify(hash), algs[t]);
        assert_int_equal(exh_hash_verify(hash, pw, strlen(pw)), EXH_VERIFY_OK);
        assert_int_equal(exh_hash_verify(hash, pw, strlen(pw) - 1), EXH_VERIFY_MISMATCH);
        assert_true(exh_hash_needs_upgrade(hash, NULL));
        unlink(file);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_embedded_nul_password),
        cmocka_unit_test(test_null_password),
        cmocka_unit_test(test_bcrypt_round_trip),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_cost_caps_inclusive),
        cmocka_unit_test(test_giant_strings),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_needs_upgrade),
        cmocka_unit_test(test_hash_password_round_trip),
        cmocka_unit_test(test_hash_password_defaults),
        cmocka_unit_test(test_params_out_of_range),
        cmocka_unit_test(test_hash_password_buffers),
        cmocka_unit_test(test_emqx_build),
        cmocka_unit_test(test_emqx_errors),
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_mosquitto_passwd_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
