/*
 * main.c: start-up.  Everything after creating the state happens inside
 * one protected call to cutover.cli.main, which returns the exit code
 * (host.c: cutover_main, shared with the test programs).
 */
#include "cutover.h"

int main(int argc, char **argv)
{
    return cutover_main(argc, argv, "cutover", NULL, "cutover.cli");
}
