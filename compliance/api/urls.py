from rest_framework.routers import SimpleRouter

from compliance.api.views import PrivacyRequestViewSet

router = SimpleRouter()
router.register("privacy-requests", PrivacyRequestViewSet, basename="privacy-request")
urlpatterns = router.urls
