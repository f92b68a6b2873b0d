/*
 * sim-ctl.h - the control API of tests/k8s_sim (/_sim/...) for the C
 * integration tests: every call fails the running cmocka test when the
 * simulator refuses it.
 */
#ifndef LOCK_ARBITER_TEST_SIM_CTL_H
#define LOCK_ARBITER_TEST_SIM_CTL_H

#include <cjson/cJSON.h>

/* The control URL (LOCK_ARBITER_TEST_KUBE_CONTROL), set before any call. */
extern const char *sim_control;

/* The variable with_sim.py exported; exits the test when it is missing. */
const char *sim_need(const char *name);
/* One control call; returns the HTTP code, *out the parsed reply if wanted. */
long sim_ctl(const char *method, const char *path, const char *body, cJSON **out);
/* Creates a pod from a description (tests/k8s_sim/README.md); copies its uid. */
void sim_create_pod(const char *desc, char uid[64]);
void sim_add_fault(const char *spec);
/* Removes faults, releases hung requests and clears the request log. */
void sim_reset(void);
/* The request log since the last reset (the caller frees *root). */
cJSON *sim_requests(cJSON **root);
/* A string or number member of a log entry ("" or -1 when absent). */
const char *sim_entry_str(const cJSON *e, const char *key);
double sim_entry_num(const cJSON *e, const char *key);

#endif
