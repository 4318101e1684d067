/*
 * knownhosts.c: OpenSSH known_hosts files, read and appended by cutover
 * itself so that every decision is visible here: plain and hashed
 * (|1|salt|hmac) host names, patterns with * ? and !negation, [host]:port
 * for ports other than 22, @revoked lines (always refused) and
 * @cert-authority lines (ignored: cutover does not do certificates).
 *
 * Fail closed: a line that cannot be parsed is skipped, never taken as a
 * match; a host with no usable line is "unknown".
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "cutover.h"
#include "knownhosts.h"

#define KH_MAX_LINE 16384
#define KH_MAX_BLOB 8192
#define KH_MAX_FILE (64L * 1024 * 1024)

/*
 * Opens a known_hosts file without ever blocking (a FIFO would block in
 * open, /dev/zero would be read for ever): only a regular file of at
 * most KH_MAX_FILE bytes is accepted.  Returns the fd, or -1 with errno
 * set, or -1 with *problem set.
 */
static int open_regular(const char *path, int flags, const char **problem,
                        struct stat *st)
{
    int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0600);

    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0) {
        close(fd);
        return -1;
    }
    if (!S_ISREG(st->st_mode) || st->st_size > KH_MAX_FILE) {
        *problem = S_ISREG(st->st_mode) ? "larger than 64 MiB"
                                        : "not a regular file";
        close(fd);
        return -1;
    }
    /* a regular file: back to ordinary blocking I/O */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* Name as it appears in known_hosts: host, or [host]:port. */
static void host_key_name(const char *host, int port, char *out, size_t cap)
{
    if (port == 22 || port <= 0)
        snprintf(out, cap, "%s", host);
    else
        snprintf(out, cap, "[%s]:%d", host, port);
}

static void lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

static int b64_decode(const char *in, size_t inlen, unsigned char *out,
                      size_t cap, size_t *outlen)
{
    return sodium_base642bin(out, cap, in, inlen, NULL, outlen, NULL,
                             sodium_base64_VARIANT_ORIGINAL);
}

/* |1|salt|hash: HMAC-SHA1(salt, name) == hash */
static int hashed_match(const char *field, const char *name)
{
    char copy[1024];
    char *salt_b64;
    char *hash_b64;
    unsigned char salt[256];
    unsigned char hash[64];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t salt_len;
    size_t hash_len;

    size_t len = strlen(field);

    if (len >= sizeof copy || strncmp(field, "|1|", 3) != 0)
        return 0;
    memcpy(copy, field + 3, len - 2);  /* with the terminating NUL */
    salt_b64 = copy;
    hash_b64 = strchr(copy, '|');
    if (hash_b64 == NULL)
        return 0;
    *hash_b64++ = '\0';
    if (b64_decode(salt_b64, strlen(salt_b64), salt, sizeof salt,
                   &salt_len) != 0 ||
        b64_decode(hash_b64, strlen(hash_b64), hash, sizeof hash,
                   &hash_len) != 0)
        return 0;
    if (HMAC(EVP_sha1(), salt, (int)salt_len, (const unsigned char *)name,
             strlen(name), mac, &maclen) == NULL)
        return 0;
    return maclen == hash_len && memcmp(mac, hash, hash_len) == 0;
}

/*
 * Does the comma-separated pattern list match name?  A matching negated
 * pattern wins over everything (as in OpenSSH).
 */
static int patterns_match(const char *list, const char *name)
{
    char pat[600];
    const char *p = list;
    int matched = 0;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *one = pat;
        int negated;

        if (len < sizeof pat) {
            memcpy(pat, p, len);
            pat[len] = '\0';
            lower(pat);
            negated = one[0] == '!';
            if (negated)
                one++;
            /* OpenSSH patterns: '*' and '?' only ([ is literal) */
            if (cutover_glob_match(one, strlen(one), name, strlen(name))) {
                if (negated)
                    return 0;
                matched = 1;
            }
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return matched;
}

/* The key type named inside an SSH key blob ("ssh-ed25519"). */
int kh_blob_type(const unsigned char *blob, size_t len, char *out,
                 size_t cap)
{
    size_t n;

    if (len < 4)
        return -1;
    n = (size_t)blob[0] << 24 | (size_t)blob[1] << 16 |
        (size_t)blob[2] << 8 | blob[3];
    if (n == 0 || n > len - 4 || n >= cap)
        return -1;
    memcpy(out, blob + 4, n);
    out[n] = '\0';
    return 0;
}

void kh_fingerprint(const unsigned char *blob, size_t len, char *out,
                    size_t cap)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES,
             sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];

    crypto_hash_sha256(digest, blob, len);
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest,
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    snprintf(out, cap, "SHA256:%s", b64);
}

/* Adds type to the comma-separated list (once; silently capped). */
static void add_type(char *types, size_t cap, const char *type)
{
    size_t used = strlen(types);
    char padded[160];
    char haystack[300];

    snprintf(padded, sizeof padded, ",%s,", type);
    snprintf(haystack, sizeof haystack, ",%s,", types);
    if (strstr(haystack, padded) != NULL)
        return;
    if (used + strlen(type) + 2 > cap)
        return;
    if (used > 0)
        strcat(types, ",");
    strcat(types, type);
}

/* Appends one line's key to h; -1 when out of memory. */
static int add_entry(struct kh_host *h, const char *type,
                     const unsigned char *blob, size_t len, int line,
                     int revoked)
{
    struct kh_entry *e;

    if (h->count == h->cap) {
        size_t cap = h->cap == 0 ? 4 : h->cap * 2;
        struct kh_entry *grown = realloc(h->entries, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        h->entries = grown;
        h->cap = cap;
    }
    e = &h->entries[h->count];
    memset(e, 0, sizeof *e);
    e->blob = malloc(len > 0 ? len : 1);
    if (e->blob == NULL)
        return -1;
    memcpy(e->blob, blob, len);
    e->len = len;
    snprintf(e->type, sizeof e->type, "%s", type);
    e->line = line;
    e->revoked = revoked;
    h->count++;
    if (!revoked)
        add_type(h->types, sizeof h->types, type);
    return 0;
}

void kh_host_free(struct kh_host *h)
{
    size_t i;

    for (i = 0; i < h->count; i++)
        free(h->entries[i].blob);
    free(h->entries);
    memset(h, 0, sizeof *h);
}

/*
 * The parsed file, kept between connections.  Every connection reads
 * the host's lines before its handshake, and reading and splitting the
 * whole file each time made a run's host-key work grow with hosts times
 * lines (the 1,000-host soak: a 1,000-line file read 1,000 times).  So
 * the file is parsed once into its usable lines, with the exact host
 * names indexed; patterns and hashed names are still matched line by
 * line, as they must be.  The file is still opened for every lookup: the
 * copy is used only while the open file is the same one, unchanged
 * (device, inode, size, modification and change times); a copy read
 * less than KH_SETTLE seconds after the file last changed is not kept,
 * since a second change within the file system's clock tick would leave
 * those the same.  One file at a time (cutover uses one known_hosts per
 * run).  On a network file system whose attributes are cached (NFS with
 * actimeo, sshfs) an edit shows as late as those attributes do.
 */
#define KH_SETTLE 2
/* A larger file is parsed for each lookup and not kept: what is kept is
 * the file and about 50 bytes a line, for the whole run. */
#define KH_KEEP_MAX (4L * 1024 * 1024)

struct kh_line {
    const char *hosts;   /* the host field; in text */
    const char *type;
    const char *b64;     /* the key, decoded when a host matches */
    int line;            /* 1-based */
    int revoked;
};

struct kh_name {
    const char *name;    /* lower-case exact name; in text */
    size_t at;           /* index in lines */
};

struct kh_index {
    char *path;              /* owned */
    struct stat st;          /* the file as it was read */
    char *text;              /* owned: the file, fields cut in place */
    struct kh_line *lines;   /* owned; usable lines in file order */
    size_t nlines;
    struct kh_name *names;   /* owned; sorted by name, then line */
    size_t nnames;
    size_t *scan;            /* owned; lines with patterns or hashes */
    size_t nscan;
};

static struct kh_index *kh_cached;

static void index_free(struct kh_index *x)
{
    if (x == NULL)
        return;
    free(x->names);
    free(x->scan);
    free(x->lines);
    free(x->text);
    free(x->path);
    free(x);
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
           a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
           a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static int name_order(const void *pa, const void *pb)
{
    const struct kh_name *a = pa;
    const struct kh_name *b = pb;
    int c = strcmp(a->name, b->name);

    if (c != 0)
        return c;
    return a->at < b->at ? -1 : a->at > b->at;
}

/* An exact name: no wildcard and no negation, short enough that
 * patterns_match would compare it. */
static int exact_list(const char *list)
{
    const char *p;
    size_t len = 0;

    if (list[0] == '|')
        return 0;
    for (p = list; ; p++) {
        if (*p == ',' || *p == '\0') {
            if (len >= 600)
                return 0;
            len = 0;
            if (*p == '\0')
                return 1;
            continue;
        }
        if (*p == '*' || *p == '?' || (len == 0 && *p == '!'))
            return 0;
        len++;
    }
}

static int push(void **arr, size_t *n, size_t *cap, size_t size)
{
    if (*n == *cap) {
        size_t grown_cap = *cap == 0 ? 64 : *cap * 2;
        void *grown = realloc(*arr, grown_cap * size);
        if (grown == NULL)
            return -1;
        *arr = grown;
        *cap = grown_cap;
    }
    (*n)++;
    return 0;
}

/* Splits the file into usable lines (the rules kh_load always had: a
 * line longer than KH_MAX_LINE, a comment, an @cert-authority line or
 * one with fewer than three fields is skipped).  -1: out of memory. */
static int index_lines(struct kh_index *x, size_t textlen)
{
    size_t cap_lines = 0, cap_names = 0, cap_scan = 0;
    char *p = x->text;
    char *end = x->text + textlen;
    int lineno = 0;

    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *next = nl != NULL ? nl + 1 : end;
        char *fields[4];
        char *save = NULL;
        int nf = 0;
        int revoked = 0;
        struct kh_line *l;

        lineno++;
        if (nl != NULL)
            *nl = '\0';
        if ((size_t)(next - p) > KH_MAX_LINE) {
            p = next;
            continue;
        }
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || *p == '\0') {
            p = next;
            continue;
        }
        for (char *tok = strtok_r(p, " \t\r\n", &save);
             tok != NULL && nf < 4; tok = strtok_r(NULL, " \t\r\n", &save))
            fields[nf++] = tok;
        p = next;
        if (nf >= 1 && fields[0][0] == '@') {
            if (strcmp(fields[0], "@revoked") != 0)
                continue;  /* @cert-authority: not used by cutover */
            revoked = 1;
            memmove(fields, fields + 1, sizeof fields[0] * 3);
            nf--;
        }
        if (nf < 3)
            continue;
        if (push((void **)&x->lines, &x->nlines, &cap_lines,
                 sizeof *x->lines) != 0)
            return -1;
        l = &x->lines[x->nlines - 1];
        l->hosts = fields[0];
        l->type = fields[1];
        l->b64 = fields[2];
        l->line = lineno;
        l->revoked = revoked;
        if (!exact_list(fields[0])) {
            if (push((void **)&x->scan, &x->nscan, &cap_scan,
                     sizeof *x->scan) != 0)
                return -1;
            x->scan[x->nscan - 1] = x->nlines - 1;
            continue;
        }
        /* an exact line is matched through the index only: its host
         * field is cut into its lower-case names in place (an empty one
         * names no host) */
        lower(fields[0]);
        for (char *n = fields[0]; n != NULL; ) {
            char *comma = strchr(n, ',');

            if (comma != NULL)
                *comma = '\0';
            if (*n != '\0') {
                if (push((void **)&x->names, &x->nnames, &cap_names,
                         sizeof *x->names) != 0)
                    return -1;
                x->names[x->nnames - 1].name = n;
                x->names[x->nnames - 1].at = x->nlines - 1;
            }
            n = comma != NULL ? comma + 1 : NULL;
        }
    }
    if (x->nnames > 1)
        qsort(x->names, x->nnames, sizeof *x->names, name_order);
    return 0;
}

/* The parsed file open on fd (st: its fstat): the kept one when it is
 * the same, else read now, and kept when it had settled and is small
 * enough (else *temporary is set: the caller frees it).  NULL with errno
 * set. */
static struct kh_index *index_for(const char *path, int fd,
                                  const struct stat *st, int *temporary)
{
    struct kh_index *x;
    struct timespec now;
    size_t got = 0;

    *temporary = 0;
    if (kh_cached != NULL && strcmp(kh_cached->path, path) == 0 &&
        same_file(&kh_cached->st, st))
        return kh_cached;
    x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->st = *st;
    x->path = strdup(path);
    x->text = malloc((size_t)st->st_size + 1);
    if (x->path == NULL || x->text == NULL)
        goto fail;
    /* the size was checked (KH_MAX_FILE); a file that grows meanwhile
     * is read as far as that size */
    while (got < (size_t)st->st_size) {
        ssize_t n = read(fd, x->text + got, (size_t)st->st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    x->text[got] = '\0';
    if (index_lines(x, got) != 0) {
        errno = ENOMEM;
        goto fail;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    if (got == (size_t)st->st_size && st->st_size <= KH_KEEP_MAX &&
        now.tv_sec - st->st_mtim.tv_sec > KH_SETTLE &&
        now.tv_sec - st->st_ctim.tv_sec > KH_SETTLE) {
        index_free(kh_cached);
        kh_cached = x;
    } else {
        *temporary = 1;
    }
    return x;
fail:
    {
        int saved = errno;
        index_free(x);
        errno = saved;
    }
    return NULL;
}

/* Adds line l to h when its key decodes (a line whose key does not is
 * skipped, as it always was).  -1: out of memory. */
static int take_line(struct kh_host *h, const struct kh_line *l,
                     unsigned char *known)
{
    size_t known_len;

    if (b64_decode(l->b64, strlen(l->b64), known, KH_MAX_BLOB,
                   &known_len) != 0)
        return 0;
    return add_entry(h, l->type, known, known_len, l->line, l->revoked);
}

/* The first of x->scan[from..] whose line names the host (nscan: none). */
static size_t next_scanned(const struct kh_index *x, const char *name,
                           size_t from)
{
    for (; from < x->nscan; from++) {
        const char *hosts = x->lines[x->scan[from]].hosts;
        if (hosts[0] == '|' ? hashed_match(hosts, name)
                            : patterns_match(hosts, name))
            break;
    }
    return from;
}

/* The host's lines into h, in file order: its exact entries (sorted by
 * line) merged with the scanned lines that name it. */
static int host_lines(const struct kh_index *x, const char *name,
                      struct kh_host *h)
{
    struct kh_name key = { name, 0 };
    size_t e = 0;          /* the host's exact entries: names[e..e_end) */
    size_t e_end;
    size_t hi = x->nnames;
    size_t s;
    unsigned char *known = malloc(KH_MAX_BLOB);
    int status = 0;

    if (known == NULL)
        return -1;
    while (e < hi) {
        size_t mid = e + (hi - e) / 2;
        if (name_order(&x->names[mid], &key) < 0)
            e = mid + 1;
        else
            hi = mid;
    }
    for (e_end = e; e_end < x->nnames &&
                    strcmp(x->names[e_end].name, name) == 0; e_end++)
        ;
    s = next_scanned(x, name, 0);
    while (status == 0 && (e < e_end || s < x->nscan)) {
        size_t exact = e < e_end ? x->names[e].at : SIZE_MAX;
        size_t scanned = s < x->nscan ? x->scan[s] : SIZE_MAX;

        if (exact < scanned) {
            status = take_line(h, &x->lines[exact], known);
            /* a line naming the host twice counts once */
            while (e < e_end && x->names[e].at == exact)
                e++;
        } else {
            status = take_line(h, &x->lines[scanned], known);
            s = next_scanned(x, name, s + 1);
        }
    }
    free(known);
    return status;
}

int kh_load(const char *path, const char *host, int port, struct kh_host *h,
            const char **problem)
{
    char name[600];
    struct stat st;
    struct kh_index *x;
    int temporary;
    int status = 0;
    int fd;

    memset(h, 0, sizeof *h);
    *problem = NULL;
    host_key_name(host, port, name, sizeof name);
    lower(name);
    fd = open_regular(path, O_RDONLY, problem, &st);
    if (fd < 0)
        return *problem == NULL && errno == ENOENT ? 0 : -1;
    x = index_for(path, fd, &st, &temporary);
    close(fd);
    if (x == NULL)
        return -1;
    if (host_lines(x, name, h) != 0) {
        kh_host_free(h);
        errno = ENOMEM;
        status = -1;
    }
    if (temporary)
        index_free(x);
    return status;
}

int kh_decide(const struct kh_host *h, const unsigned char *blob,
              size_t bloblen, struct kh_result *res)
{
    char key_type[128];
    size_t i;

    memset(res, 0, sizeof *res);
    res->status = KH_UNKNOWN;
    snprintf(res->types, sizeof res->types, "%s", h->types);
    if (kh_blob_type(blob, bloblen, key_type, sizeof key_type) != 0)
        return -1;
    for (i = 0; i < h->count; i++) {
        const struct kh_entry *e = &h->entries[i];

        if (strcmp(e->type, key_type) != 0)
            continue;
        if (e->len == bloblen && memcmp(e->blob, blob, bloblen) == 0) {
            res->line = e->line;
            if (e->revoked) {
                res->status = KH_REVOKED;
                break;
            }
            res->status = KH_MATCH;
        } else if (res->status != KH_MATCH && !e->revoked) {
            res->status = KH_CHANGED;
            res->line = e->line;
        }
    }
    /* A key that matches one line wins over an old line of the same type:
     * OpenSSH accepts a host listed twice.  @revoked wins over all. */
    return 0;
}

int kh_append(const char *path, const char *host, int port,
              const unsigned char *blob, size_t bloblen, int recheck,
              char *err, size_t errlen)
{
    char name[600];
    char type[128];
    char *b64;
    size_t b64len = sodium_base64_ENCODED_LEN(bloblen,
                                              sodium_base64_VARIANT_ORIGINAL);
    int fd;
    FILE *f;
    int status = -1;

    if (kh_blob_type(blob, bloblen, type, sizeof type) != 0) {
        snprintf(err, errlen, "the server's host key is malformed");
        return -1;
    }
    b64 = malloc(b64len);
    if (b64 == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sodium_bin2base64(b64, b64len, blob, bloblen,
                      sodium_base64_VARIANT_ORIGINAL);
    host_key_name(host, port, name, sizeof name);
    {
        const char *problem = NULL;
        struct stat st;
        fd = open_regular(path, O_WRONLY | O_APPEND | O_CREAT, &problem, &st);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", path,
                     problem != NULL ? problem : strerror(errno));
            goto done;
        }
    }
    /* Several runs may accept hosts at once.  A lock held elsewhere is
     * waited for by the caller, never here; a file system without
     * flock (ENOLCK) is written unlocked, as before. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        close(fd);
        status = KH_APPEND_LOCKED;
        goto done;
    }
    /* The host was unknown when the file was read, before the
     * handshake; the program that held the lock may have recorded it
     * since.  Read again under the lock: the same key needs no second
     * line, any other line for the host is refused.  (Without a wait
     * the one reading stands, as the decision was made from it.) */
    if (recheck) {
        struct kh_host again;
        struct kh_result res;
        const char *problem = NULL;
        int decided = kh_load(path, host, port, &again, &problem) == 0 &&
                      kh_decide(&again, blob, bloblen, &res) == 0;
        kh_host_free(&again);
        if (decided && res.status == KH_MATCH) {
            close(fd);
            status = 0;
            goto done;
        }
        if (decided && (res.status != KH_UNKNOWN || res.types[0] != '\0')) {
            snprintf(err, errlen, "another program wrote %s for this host "
                     "in %s meanwhile; not adding this one",
                     res.status == KH_REVOKED ? "this key as @revoked"
                     : res.status == KH_CHANGED ? "another key"
                     : "keys of other types", path);
            close(fd);
            goto done;
        }
    }
    f = fdopen(fd, "a");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        goto done;
    }
    fprintf(f, "%s %s %s\n", name, type, b64);
    if (fflush(f) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        fclose(f);
        goto done;
    }
    fclose(f);
    status = 0;
done:
    free(b64);
    return status;
}
