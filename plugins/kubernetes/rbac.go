package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// permission is one resource the provider uses and the verbs it needs.
type permission struct {
	Group       string
	Resource    string // plural, with /subresource where one
	Verbs       []string
	Subresource string
}

// Permissions lists what a mode needs in the workload's namespace: the
// minimal Role the README documents.
func Permissions(mode string) []permission {
	if mode == ModeArgo {
		return []permission{
			{Group: "argoproj.io", Resource: "rollouts", Verbs: []string{"get", "list", "watch", "patch"}},
			{Group: "argoproj.io", Resource: "rollouts", Subresource: "status", Verbs: []string{"patch"}},
			{Group: "apps", Resource: "replicasets", Verbs: []string{"get", "list", "watch"}},
		}
	}
	return []permission{
		{Group: "apps", Resource: "deployments", Verbs: []string{"get", "list", "watch", "create", "patch", "delete"}},
		{Group: "apps", Resource: "replicasets", Verbs: []string{"get", "list", "watch"}},
	}
}

func (p permission) name() string {
	if p.Subresource != "" {
		return p.Resource + "/" + p.Subresource
	}
	return p.Resource
}

// ForbiddenError is an RBAC denial, said the way a person fixes it.
type ForbiddenError struct {
	Who       string // "serviceaccount ripcord", `user "ana"`
	Verb      string
	Resource  string
	Namespace string
	Needs     []string // every verb the provider needs on Resource
}

func (e *ForbiddenError) Error() string {
	where := ""
	if e.Namespace != "" {
		where = " in namespace " + e.Namespace
	}
	return fmt.Sprintf("forbidden: %s cannot %s %s%s — needs verbs %s on %s",
		e.Who, e.Verb, e.Resource, where, strings.Join(e.Needs, ", "), e.Resource)
}

// The API server's wording: User "system:serviceaccount:shop:ripcord"
// cannot patch resource "deployments" in API group "apps" in the namespace
// "shop".
var forbiddenRE = regexp.MustCompile(`User "([^"]*)" cannot (\S+) resource "([^"]+)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]+)")?`)

// explainForbidden turns an RBAC denial into a ForbiddenError naming what
// the mode needs; other errors are returned as they are.
func explainForbidden(err error, mode, namespace string) error {
	var status apierrors.APIStatus
	if err == nil || !apierrors.IsForbidden(err) || !errors.As(err, &status) {
		return err
	}
	msg := status.Status().Message
	m := forbiddenRE.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("forbidden: %s", msg)
	}
	fe := &ForbiddenError{Who: who(m[1]), Verb: m[2], Resource: m[3], Namespace: m[5]}
	if fe.Namespace == "" {
		fe.Namespace = namespace
	}
	for _, p := range Permissions(mode) {
		if p.name() == fe.Resource || (p.Resource == fe.Resource && p.Subresource == "") {
			fe.Needs = p.Verbs
			break
		}
	}
	if fe.Needs == nil {
		fe.Needs = []string{fe.Verb}
	}
	return fe
}

func who(user string) string {
	if rest, ok := strings.CutPrefix(user, "system:serviceaccount:"); ok {
		if _, name, ok := strings.Cut(rest, ":"); ok {
			return "serviceaccount " + name
		}
	}
	return fmt.Sprintf("user %q", user)
}

// checkAccess asks the API server (SelfSubjectAccessReview) whether this
// identity holds every permission the mode needs in the namespace, and
// returns the first one missing as a ForbiddenError.
func checkAccess(ctx context.Context, c kubernetes.Interface, mode, namespace string) error {
	var user string
	for _, p := range Permissions(mode) {
		for _, verb := range p.Verbs {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource},
			}}
			res, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("checking permissions: %w", err)
			}
			if !res.Status.Allowed {
				if user == "" {
					user = whoAmI(ctx, c)
				}
				return &ForbiddenError{Who: user, Verb: verb, Resource: p.name(), Namespace: namespace, Needs: p.Verbs}
			}
		}
	}
	return nil
}

// whoAmI names this identity (SelfSubjectReview), or "this identity".
func whoAmI(ctx context.Context, c kubernetes.Interface) string {
	res, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || res.Status.UserInfo.Username == "" {
		return "this identity"
	}
	return who(res.Status.UserInfo.Username)
}
