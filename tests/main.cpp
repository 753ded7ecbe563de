// tests/main.cpp - the one doctest main of edgelm_tests, compiled once; every tests/test_*.cpp
// includes <doctest/doctest.h> (or tests/test_util.hpp) and only declares test cases.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
