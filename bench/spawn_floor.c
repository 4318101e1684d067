/*
 * spawn_floor: the practical floor for running a command locally, as a
 * baseline for bench/local.sh.  Runs argv N times the way core/proc.c
 * does (posix_spawn with stdout/stderr pipes, read to EOF, waitpid), with
 * nothing else around it.
 * usage: spawn_floor N PROGRAM [ARGS...]
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    long n;
    long i;

    if (argc < 3) {
        fprintf(stderr, "usage: spawn_floor N PROGRAM [ARGS...]\n");
        return 2;
    }
    n = strtol(argv[1], NULL, 10);
    for (i = 0; i < n; i++) {
        int out[2];
        posix_spawn_file_actions_t fa;
        pid_t pid;
        char buf[4096];
        int status;

        if (pipe(out) != 0)
            return 1;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, out[1], 2);
        posix_spawn_file_actions_addclose(&fa, out[0]);
        if (posix_spawn(&pid, argv[2], &fa, NULL, argv + 2, environ) != 0)
            return 1;
        posix_spawn_file_actions_destroy(&fa);
        close(out[1]);
        while (read(out[0], buf, sizeof buf) > 0)
            ;
        close(out[0]);
        waitpid(pid, &status, 0);
    }
    return 0;
}
