/*
 * libssh2_loop: the raw libssh2 floor for bench/ssh.sh.  One connection
 * (host key checked against a known_hosts file, public-key login), then
 * STEPS commands, each on an exec channel of its own, run one after the
 * other: stdout and stderr read to the end, the exit status taken.  No
 * event loop, no journal, no output handling: what cutover's exec path
 * costs at the least.  Built by CMake (not installed).
 *
 * usage: libssh2_loop HOST PORT USER KEYFILE KNOWN_HOSTS STEPS COMMAND
 * exit 0 when every command exited 0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh2.h>

static int die(LIBSSH2_SESSION *s, const char *what)
{
    char *msg = NULL;

    if (s != NULL)
        libssh2_session_last_error(s, &msg, NULL, 0);
    fprintf(stderr, "libssh2_loop: %s%s%s\n", what, msg ? ": " : "",
            msg ? msg : "");
    return 1;
}

static int host_key_ok(LIBSSH2_SESSION *s, const char *file,
                       const char *host, int port)
{
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s);
    size_t len;
    int type;
    const char *key = libssh2_session_hostkey(s, &len, &type);
    struct libssh2_knownhost *found = NULL;
    int rc = 0;

    if (kh == NULL || key == NULL)
        goto out;
    if (libssh2_knownhost_readfile(kh, file,
                                   LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
        goto out;
    rc = libssh2_knownhost_checkp(kh, host, port, key, len,
                                  LIBSSH2_KNOWNHOST_TYPE_PLAIN |
                                  LIBSSH2_KNOWNHOST_KEYENC_RAW, &found) ==
         LIBSSH2_KNOWNHOST_CHECK_MATCH;
out:
    if (kh != NULL)
        libssh2_knownhost_free(kh);
    return rc;
}

static int run_one(LIBSSH2_SESSION *s, const char *cmd)
{
    LIBSSH2_CHANNEL *ch = libssh2_channel_open_session(s);
    char buf[16384];
    ssize_t n;
    int status = -1;

    if (ch == NULL)
        return -1;
    if (libssh2_channel_exec(ch, cmd) != 0)
        goto out;
    libssh2_channel_send_eof(ch);
    for (;;) {
        n = libssh2_channel_read(ch, buf, sizeof buf);
        if (n > 0)
            continue;
        n = libssh2_channel_read_stderr(ch, buf, sizeof buf);
        if (n > 0)
            continue;
        if (n < 0 || libssh2_channel_eof(ch))
            break;
    }
    libssh2_channel_close(ch);
    libssh2_channel_wait_closed(ch);
    status = libssh2_channel_get_exit_status(ch);
out:
    libssh2_channel_free(ch);
    return status;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    LIBSSH2_SESSION *s = NULL;
    int fd = -1;
    int steps;
    int i;
    int rc = 1;

    if (argc != 8) {
        fprintf(stderr, "usage: libssh2_loop HOST PORT USER KEYFILE "
                "KNOWN_HOSTS STEPS COMMAND\n");
        return 2;
    }
    steps = atoi(argv[6]);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
        return die(NULL, "HOST must be an IPv4 address");
    if (libssh2_init(0) != 0)
        return die(NULL, "libssh2_init");
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        rc = die(NULL, "connect");
        goto out;
    }
    /* as cutover (core/ssh/connect.c) and OpenSSH do: without it, Nagle's
     * algorithm holds each small packet for the peer's delayed ACK, about
     * 40 ms per command, and the floor would not be one */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    s = libssh2_session_init();
    if (s == NULL || libssh2_session_handshake(s, fd) != 0) {
        rc = die(s, "handshake");
        goto out;
    }
    if (!host_key_ok(s, argv[5], argv[1], atoi(argv[2]))) {
        rc = die(NULL, "host key not in the known_hosts file");
        goto out;
    }
    if (libssh2_userauth_publickey_fromfile(s, argv[3], NULL, argv[4],
                                            NULL) != 0) {
        rc = die(s, "authentication");
        goto out;
    }
    rc = 0;
    for (i = 0; i < steps; i++) {
        if (run_one(s, argv[7]) != 0) {
            rc = die(s, "a command failed");
            break;
        }
    }
    libssh2_session_disconnect(s, "done");
out:
    if (s != NULL)
        libssh2_session_free(s);
    if (fd >= 0)
        close(fd);
    libssh2_exit();
    return rc;
}
