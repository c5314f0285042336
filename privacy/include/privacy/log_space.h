// Arithmetic on numbers stored as their natural logarithm.
//
// The RDP analysis sums terms that range from 1e-300 to 1e+300; it keeps each as log(x) and
// combines them with these helpers, which never form x itself. -infinity stands for 0.
// They follow Opacus (opacus/accountants/analysis/rdp.py) operation for operation so that the
// accountant reproduces its numbers.
#pragma once

namespace privacy {

// log(exp(log_x) + exp(log_y)).
double log_add(double log_x, double log_y);

// log(exp(log_x) - exp(log_y)); requires log_x >= log_y (throws PrivacyError otherwise). Returns
// -infinity when they are equal.
double log_sub(double log_x, double log_y);

// log(erfc(x)) for every finite x, accurate also where erfc(x) underflows (x > ~26): there it
// uses the asymptotic expansion erfc(x) ~ exp(-x^2) / (x sqrt(pi)) * sum (-1)^n (2n-1)!! /
// (2x^2)^n.
double log_erfc(double x);

}  // namespace privacy
