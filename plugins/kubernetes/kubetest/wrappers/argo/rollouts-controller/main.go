// Command rollouts-controller runs the Argo Rollouts controller for the
// kubernetes provider's cluster tests: every Rollout in every namespace, the
// kubeconfig from --kubeconfig, no leader election, no traffic routers
// beyond plain Services. Upstream's main (cmd/rollouts-controller) is a
// package main and cannot be imported, so this one wires the same manager
// with the defaults the tests rely on.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	smiclientset "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned"
	log "github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/argoproj/argo-rollouts/controller"
	"github.com/argoproj/argo-rollouts/controller/metrics"
	"github.com/argoproj/argo-rollouts/metricproviders"
	jobprovider "github.com/argoproj/argo-rollouts/metricproviders/job"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	clientset "github.com/argoproj/argo-rollouts/pkg/client/clientset/versioned"
	"github.com/argoproj/argo-rollouts/pkg/signals"
	"github.com/argoproj/argo-rollouts/rollout"
	controllerutil "github.com/argoproj/argo-rollouts/utils/controller"
	ingressutil "github.com/argoproj/argo-rollouts/utils/ingress"
	istioutil "github.com/argoproj/argo-rollouts/utils/istio"
	logutil "github.com/argoproj/argo-rollouts/utils/log"
	"github.com/argoproj/argo-rollouts/utils/record"
	"github.com/argoproj/argo-rollouts/utils/tolerantinformer"
	"github.com/argoproj/argo-rollouts/utils/version"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	metricsPort := flag.Int("metrics-port", controller.DefaultMetricsPort, "port of the metrics endpoint (loopback)")
	healthzPort := flag.Int("healthz-port", controller.DefaultHealthzPort, "port of the healthz endpoint (loopback)")
	printVersion := flag.Bool("version", false, "print the version")
	flag.Parse()
	if *printVersion {
		fmt.Println(version.GetVersion())
		return
	}
	if err := run(*kubeconfig, *metricsPort, *healthzPort); err != nil {
		fmt.Fprintln(os.Stderr, "rollouts-controller:", err)
		os.Exit(1)
	}
}

func run(kubeconfig string, metricsPort, healthzPort int) error {
	logger := log.New()
	logutil.SetKLogLogger(logger)
	ctx := signals.SetupSignalHandlerContext()

	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	config.QPS, config.Burst = 40, 80
	namespace := metav1.NamespaceAll
	requests := &metrics.K8sRequestsCountProvider{}

	kubeClient, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	argoClient, err := clientset.NewForConfig(config)
	if err != nil {
		return err
	}
	dynamicClient, err := dynamic.NewForConfig(config)
	if err != nil {
		return err
	}
	discoveryClient, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return err
	}
	smiClient, err := smiclientset.NewForConfig(config)
	if err != nil {
		return err
	}
	resync := time.Duration(controller.DefaultRolloutResyncPeriod) * time.Second
	kubeInformers := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, resync, kubeinformers.WithNamespace(namespace))
	rsInformers := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, resync, kubeinformers.WithNamespace(namespace),
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = v1alpha1.DefaultRolloutUniqueLabelKey }))
	instanceID := controllerutil.InstanceIDRequirement("")
	byInstance := func(o *metav1.ListOptions) { o.LabelSelector = instanceID.String() }
	jobClient, _, err := metricproviders.GetAnalysisJobClientset(kubeClient)
	if err != nil {
		return err
	}
	jobInformers := kubeinformers.NewSharedInformerFactoryWithOptions(jobClient, resync, kubeinformers.WithNamespace(namespace),
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = jobprovider.AnalysisRunUIDLabelKey }))
	dynInformers := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dynamicClient, resync, namespace, byInstance)
	clusterDynInformers := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dynamicClient, resync, metav1.NamespaceAll, byInstance)
	istioDynInformers := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dynamicClient, resync, namespace, nil)
	notifySecrets := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, resync, kubeinformers.WithNamespace(namespace),
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + record.NotificationSecret }))
	notifyConfigMaps := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, resync, kubeinformers.WithNamespace(namespace),
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + record.NotificationConfigMap }))
	mode, err := ingressutil.DetermineIngressMode("", kubeClient.DiscoveryClient)
	if err != nil {
		return err
	}
	ingresses, err := ingressutil.NewIngressWrapper(mode, kubeClient, kubeInformers)
	if err != nil {
		return err
	}
	cm := controller.NewManager(
		namespace, kubeClient, argoClient, dynamicClient, smiClient, discoveryClient,
		rsInformers.Apps().V1().ReplicaSets(),
		kubeInformers.Core().V1().Services(),
		ingresses,
		jobInformers.Batch().V1().Jobs(),
		jobInformers.Core().V1().Pods(),
		tolerantinformer.NewTolerantRolloutInformer(dynInformers),
		tolerantinformer.NewTolerantExperimentInformer(dynInformers),
		tolerantinformer.NewTolerantAnalysisRunInformer(dynInformers),
		tolerantinformer.NewTolerantAnalysisTemplateInformer(dynInformers),
		tolerantinformer.NewTolerantClusterAnalysisTemplateInformer(clusterDynInformers),
		dynamicClient,
		istioDynInformers.ForResource(istioutil.GetIstioVirtualServiceGVR()).Informer(),
		istioDynInformers.ForResource(istioutil.GetIstioDestinationRuleGVR()).Informer(),
		notifyConfigMaps, notifySecrets,
		resync, "", metricsPort, healthzPort, requests,
		[]string{"nginx"}, []string{"alb"},
		dynInformers, clusterDynInformers, istioDynInformers,
		false, kubeInformers, rsInformers, jobInformers,
		rollout.DefaultEphemeralMetadataThreads, rollout.DefaultEphemeralMetadataPodRetries,
		false)
	electOpts := controller.NewLeaderElectionOptions()
	electOpts.LeaderElect = false
	return cm.Run(ctx, controller.DefaultRolloutThreads, controller.DefaultServiceThreads, controller.DefaultIngressThreads,
		controller.DefaultExperimentThreads, controller.DefaultAnalysisThreads, electOpts)
}
